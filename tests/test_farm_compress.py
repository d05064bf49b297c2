"""`compress --device lab` end to end through a real redis-server and a real worker process (demo CNN, digits)."""
import json
import re
from pathlib import Path

import edgeprune
from conftest import FAST, run_cli
from farm_testlib import attempts, beats, start_worker, stop, table_results, wait_for
from farm_testlib import broker  # noqa: F401  (the pytest fixture)
from edgeprune.models import build_model
from edgeprune.models.layer_space import build_layer_space
from edgeprune.prune.artifact import load_compressed


def test_compress_through_the_farm_calibrates_fits_and_measures_on_its_worker(broker, tmp_path):
    url, client = broker
    procs = {"w1": start_worker(url, "w1", tmp_path)}
    try:
        wait_for(lambda: beats(client).get("w1"), "w1 to beat", procs, tmp_path)
        run_cli("device", "add", "lab", "--broker", url)  # the hardware class comes from the heartbeat
        table = tmp_path / "lab.sqlite"
        run_cli("calibrate", "--device", "lab", "--model", "demo_cnn", "--points", "3", "--network-variants", "4",
                *FAST, "--table", table)
        cost = edgeprune.fit("demo_cnn", device="lab", table=table)  # saved where compress looks for it
        # Halfway between the floor (every group at one channel) and dense: feasible whatever this machine measures
        # (on so tiny a network fixed overhead dominates; a 4-variant fit may even price the floor above dense).
        space = build_layer_space(*build_model("demo_cnn"))
        floor, dense = cost.predict({g.name: g.divisor for g in space.prunable_groups}), cost.predict()
        calibrated = len(attempts(client))
        out = tmp_path / "out"
        proc = run_cli("compress", "--device", "lab", "--model", "demo_cnn", "--data", "digits", "--data-limit",
                       "400", "--budget", f"{min(1.0, (floor + dense) / 2 / dense):.4f}", "--method", "uniform", "--epochs",
                       "1", "--correction-rounds", "0", "--out", out, "--json", timeout=300, check=False)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    finally:
        stop(procs)
    s = json.loads(proc.stdout)
    rows = table_results(table)
    assert rows and all(r["farm"]["worker"] == "w1" for _, r in rows)  # every table point came through the farm
    assert s["device"] == "lab" and s["measured_cost"] > 0 and "measured" in s["cost_source"]
    assert s["closed_loop"]["rounds"][0]["measured"] > 0  # the pruned structure, measured on the worker
    assert s["compressed"]["macs"] < s["dense"]["macs"] and s["parity"]["passed"]
    tries = attempts(client)
    # compress used the fitted cost model (no second calibration) and measured on the worker, each job once: one
    # (model, dense) pair of jobs per pair each decision says it took
    hows = [r["measured_how"] for r in s["closed_loop"]["rounds"]] + [s["measured_how"]]
    pairs = sum(int(re.search(r"median of (\d+) pair", how).group(1)) for how in hows)
    assert len(tries) == calibrated + 2 * pairs and set(tries.values()) == {1}
    model, info = load_compressed(s["artifacts"]["model_dir"])
    assert info["widths"] == s["compressed"]["widths"] and Path(s["artifacts"]["model_dir"]).is_dir()
