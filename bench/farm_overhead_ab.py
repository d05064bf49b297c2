"""A/B of per-job overhead: bench/farm.py's overhead phase (1 worker, 1 HTTP agent), this file's bench code run
against the edgeprune and agent code of one tree.

Usage: python bench/farm_overhead_ab.py TREE JOBS [GAP_S]  (TREE: a checkout, e.g. an export of main; run it for two
trees in turn, from a directory outside both, with PYTHONPATH empty, so the host, the worker and the agent all import
that tree). GAP_S: pause before each job (bench/farm.py's overhead_spaced uses 0.1). Prints one JSON line.
"""
import importlib.util
import json
import os
import sys
import tempfile
from pathlib import Path

root = Path(sys.argv[1]).resolve()
sys.path[:0] = [str(root), str(root / "device_agents")]
spec = importlib.util.spec_from_file_location("benchfarm", Path(__file__).resolve().parent / "farm.py")
bf = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bf)
bf.ENV["PYTHONPATH"] = os.pathsep.join([str(root), str(root / "device_agents")])  # workers and agents: TREE's code
import redis  # noqa: E402
from edgeprune.measure.devices import AgentDevice  # noqa: E402
from edgeprune.measure.settings import MeasureSettings  # noqa: E402

KEYS = ("farm_overhead_ms_median", "farm_overhead_in_worker_ms_median", "farm_broker_path_ms_median",
        "farm_pickup_ms_median", "farm_return_ms_median", "farm_broker_path_ms_min", "http_overhead_ms_median",
        "farm_overhead_ms_min", "http_overhead_ms_min")


def main():
    """Start redis-server, one worker and one agent; print the overhead phase's medians."""
    with tempfile.TemporaryDirectory() as d:
        tmp, port = Path(d), bf.free_port()
        procs = bf.Procs(tmp)
        procs.start("redis", ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                              "--appendonly", "no", "--dir", str(tmp)])
        url = f"redis://127.0.0.1:{port}/0"
        client = redis.Redis.from_url(url)
        try:
            bf.wait_until(lambda: bf._pings(client), "redis")
            token = tmp / "token"
            token.write_text("bench-" + os.urandom(8).hex())
            token.chmod(0o600)
            agent = AgentDevice("a1", procs.agent("a1", token), token.read_text())
            procs.worker(url, "w1")
            bf.wait_until(lambda: {"w1"} <= set(bf.beats(client)), "worker")
            farm = bf.farm_device(url, client)
            settings = MeasureSettings(warmup=1, min_repeats=1, min_duration_s=0.05, reference=False)
            gap = float(sys.argv[3]) if len(sys.argv) > 3 else 0.0
            over = bf.overhead(farm, agent, int(sys.argv[2]), settings, gap_s=gap)
        finally:
            procs.close()
    print(root, f"gap {gap}", json.dumps({k: over[k] for k in KEYS}), f"load {os.getloadavg()[0]:.2f}", flush=True)


if __name__ == "__main__":
    main()
