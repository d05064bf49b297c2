"""Benchmark: calibration throughput (points/min) and the device agent's overhead versus in-process measurement.

Usage: python bench/calibration_throughput.py [--model resnet20] [--points 200] [--variants 10] [--agent-layers 30]
Prints a table and writes bench/results/calibration_throughput.json.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from edgeprune.measure.calibrate import calibrate
from edgeprune.measure.devices import AgentDevice, LocalDevice
from edgeprune.measure.microbench import layer_model_bytes
from edgeprune.measure.sampling import plan_layer_points
from edgeprune.measure.settings import MeasureSettings
from edgeprune.models import build_model
from edgeprune.models.layer_space import build_layer_space
from edgeprune.tables.store import LatencyTable

RESULTS = Path(__file__).parent / "results"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_agent(tmp: Path) -> tuple[subprocess.Popen, AgentDevice]:
    """A real agent process on a loopback port (the same one a user starts with `edgeprune agent serve`)."""
    token_file = tmp / "token"
    token_file.write_text("bench-" + os.urandom(8).hex())
    token_file.chmod(0o600)
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "edgeprune.cli.main", "agent", "serve", "--port", str(port),
                             "--token-file", str(token_file), "--sensor", "estimate"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if httpx.get(url + "/v1/health", timeout=1).status_code == 200:
                return proc, AgentDevice("bench-agent", url, token_file.read_text().strip())
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("agent did not start")


def throughput(model_name: str, points: int, variants: int, settings: MeasureSettings, tmp: Path) -> dict:
    """Full calibration on the local device, from an empty table and cold export cache."""
    model, shape = build_model(model_name)
    space = build_layer_space(model, shape)
    device = LocalDevice(sensor="estimate")
    with LatencyTable(tmp / "throughput.sqlite") as table:
        t0 = time.perf_counter()
        res = calibrate(device, model_name, model, space, table, settings=settings, points=points,
                        network_variants=variants)
        wall = time.perf_counter() - t0
    measured = res.points_measured + res.network_variants_measured
    return {"model": model_name, "points_per_signature": points, "signatures": res.signatures,
            "layer_points": res.points_measured, "network_variants": res.network_variants_measured,
            "wall_s": round(wall, 1), "points_per_min": round(measured / wall * 60, 1),
            "energy_source": res.energy_source}


def agent_overhead(model_name: str, n_layers: int, settings: MeasureSettings, tmp: Path) -> dict:
    """Same single-layer models measured in-process and through the agent, interleaved to cancel drift."""
    model, shape = build_model(model_name)
    space = build_layer_space(model, shape)
    sigs = space.signatures()
    pts = [(k, p) for k, ps in plan_layer_points(space, 50).items() for p in ps]
    random.Random(0).shuffle(pts)
    pts = pts[:n_layers]
    local = LocalDevice(sensor="estimate")
    proc, agent = start_agent(tmp)
    rows = []
    try:
        for i, (key, (c_in, c_out)) in enumerate(pts):
            data = layer_model_bytes(sigs[key], c_in, c_out, "onnxruntime")
            # "again" is a second in-process run: its spread against "local" is the noise floor.
            order = [("local", local), ("agent", agent), ("again", local)]
            if i % 2:
                order.reverse()
            row = {"signature": key, "c_in": c_in, "c_out": c_out}
            for name, dev in order:
                t0 = time.perf_counter()
                res = dev.measure(data, "onnxruntime", settings)
                row[f"{name}_wall_s"] = time.perf_counter() - t0
                row[f"{name}_median_ms"] = res.latency.median
                row[f"{name}_run_cv"] = res.latency.run_cv
            rows.append(row)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    ratios = [r["agent_median_ms"] / r["local_median_ms"] for r in rows]
    noise = [r["again_median_ms"] / r["local_median_ms"] for r in rows]
    wall = [r["agent_wall_s"] / r["local_wall_s"] for r in rows]
    return {"layers": len(rows),
            "latency_overhead_median": round(statistics.median(ratios) - 1, 4),
            "latency_overhead_mean": round(statistics.fmean(ratios) - 1, 4),
            "latency_ratio_p10_p90": [round(x, 4) for x in statistics.quantiles(ratios, n=10)[::8]],
            "noise_ratio_p10_p90": [round(x, 4) for x in statistics.quantiles(noise, n=10)[::8]],
            "wall_overhead_median": round(statistics.median(wall) - 1, 4),
            "local_run_cv_median": round(statistics.median(r["local_run_cv"] for r in rows), 4),
            "rows": rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="resnet20")
    ap.add_argument("--points", type=int, default=200)
    ap.add_argument("--variants", type=int, default=10)
    ap.add_argument("--agent-layers", type=int, default=30)
    ap.add_argument("--min-duration", type=float, default=0.3)
    args = ap.parse_args()
    settings = MeasureSettings(min_duration_s=args.min_duration)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        os.environ["EDGEPRUNE_CACHE_DIR"] = str(tmp / "cache")
        from edgeprune_agent import device_info

        info = device_info()
        tput = throughput(args.model, args.points, args.variants, settings, tmp)
        over = agent_overhead(args.model, args.agent_layers, settings, tmp)
    result = {"device": {k: info[k] for k in ("cpu_model", "cores_logical", "fingerprint_id")},
              "runtime": "onnxruntime", "threads": settings.threads, "settings": settings.as_kwargs(),
              "throughput": tput, "agent_overhead": over,
              "target": {"agent_latency_overhead_abs_lt": 0.05},
              "target_met": abs(over["latency_overhead_median"]) < 0.05}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "calibration_throughput.json").write_text(json.dumps(result, indent=2))
    print(f"device: {info['cpu_model']} ({info['cores_logical']} cores), onnxruntime, 1 thread, "
          f"energy: {tput['energy_source']}")
    print(f"calibration {args.model} --points {args.points}: {tput['layer_points']} layer points + "
          f"{tput['network_variants']} variants in {tput['wall_s']} s = {tput['points_per_min']} points/min")
    print(f"agent vs in-process, {over['layers']} layers: median latency overhead "
          f"{over['latency_overhead_median']:+.2%} (mean {over['latency_overhead_mean']:+.2%}, p10/p90 ratio "
          f"{over['latency_ratio_p10_p90']}; in-process vs in-process {over['noise_ratio_p10_p90']}), wall-clock per point {over['wall_overhead_median']:+.2%}, "
          f"measurement run-to-run CV {over['local_run_cv_median']:.2%}")
    print(f"target |latency overhead| < 5 %: {'met' if result['target_met'] else 'MISSED'}")


if __name__ == "__main__":
    main()
