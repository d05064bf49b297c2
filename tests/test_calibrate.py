import json
import signal
import sqlite3
import subprocess
import sys
import time

from conftest import FAST, run_cli
import numpy as np

from edgeprune.costmodel.dataset import Selection, network_samples, reference_scale, row_value
from edgeprune.models.layer_space import architecture_hash, build_layer_space
from edgeprune.measure.calibrate import calibrate, plan_variants
from edgeprune.measure.devices import LocalDevice
from edgeprune.measure.settings import MeasureSettings
from edgeprune.models import build_model
from edgeprune.tables.store import LatencyTable

TINY = MeasureSettings(warmup=1, min_repeats=3, min_duration_s=0.01)


def test_calibrate_fills_table_and_resumes(tmp_path):
    model, shape = build_model("demo_cnn")
    space = build_layer_space(model, shape)
    device = LocalDevice(sensor="estimate")
    with LatencyTable(tmp_path / "t.sqlite") as table:
        seen = []
        first = calibrate(device, "demo_cnn", model, space, table, settings=TINY, points=6, network_variants=3,
                          progress=lambda *a: seen.append(a))
        assert first.points_measured == first.points_planned > 0 and first.points_skipped == 0
        assert first.network_variants_measured == 3
        assert first.energy_kind == "estimate"
        assert table.count("layer") == first.points_planned and table.count("network") == 3
        assert seen[-1] == ("network", 3, 3, True)
        again = calibrate(device, "demo_cnn", model, space, table, settings=TINY, points=6, network_variants=3)
        assert again.points_measured == 0 and again.points_skipped == first.points_planned
        assert again.network_variants_skipped == 3
        # other settings are a different measurement, not a duplicate
        other = calibrate(device, "demo_cnn", model, space, table, settings=MeasureSettings(
            threads=2, warmup=1, min_repeats=3, min_duration_s=0.01), points=2, network_variants=0)
        assert other.points_measured == other.points_planned
        rows = list(table.rows("network"))
        assert json.loads(rows[0]["widths_json"]) == space.dense_widths()
        assert all(r["latency_median_ms"] > 0 and r["energy_kind"] == "estimate" for r in rows)
        layer = next(table.rows("layer"))
        result = json.loads(layer["result_json"])
        assert result["runtime"]["name"] == "onnxruntime" and result["latency_ms"]["n"] >= 3


def test_network_passes_are_merged_by_their_median(tmp_path):
    model, shape = build_model("demo_cnn")
    space = build_layer_space(model, shape)
    device = LocalDevice(sensor="estimate")
    sel = Selection(device.info()["fingerprint_id"])
    arch = architecture_hash(space)
    with LatencyTable(tmp_path / "t.sqlite") as table:
        # One pass first (as tables written before passes existed), then two more passes resume on top of it.
        calibrate(device, "demo_cnn", model, space, table, settings=TINY, points=1, network_variants=12)
        more = calibrate(device, "demo_cnn", model, space, table, settings=TINY, points=1, network_variants=12,
                         network_passes=3)
        assert more.network_variants_planned == 36 and more.network_variants_skipped == 12
        assert more.network_variants_measured == 24 and table.count("network") == 36
        widths, y = network_samples(table, sel, arch, "latency")
        scale = reference_scale(table, sel)
        by_slot = {}
        for row in table.rows("network"):
            plan = json.loads(row["result_json"])["plan"]
            assert 0 <= plan["pass"] < 3
            by_slot.setdefault((row["widths_json"], plan["repeat"]), []).append(row_value(row, "latency", scale))
    # 12 slots: the dense model twice (repeats 0 and 1, kept apart) and 10 variants, each the median of 3 passes.
    assert len(widths) == len(y) == 12 and widths[0] == widths[10] == space.dense_widths()
    assert all(len(v) == 3 for v in by_slot.values())
    assert sorted(y) == sorted(float(np.median(v)) for v in by_slot.values())
    # Rows written before the plan slot was recorded: the n-th row of the same widths is repeat n.
    with sqlite3.connect(tmp_path / "t.sqlite") as db:
        db.execute("UPDATE network_measurements SET result_json = json_remove(result_json, '$.plan') "
                   "WHERE json_extract(result_json, '$.plan.pass') = 0")
    with LatencyTable(tmp_path / "t.sqlite") as table:
        legacy_widths, legacy_y = network_samples(table, sel, arch, "latency")
    assert legacy_widths == widths and np.allclose(legacy_y, y)
    # A later plan (another seed) with passes also gives the earlier plan's variants their passes.
    with LatencyTable(tmp_path / "t.sqlite") as table:
        other = calibrate(device, "demo_cnn", model, space, table, settings=TINY, points=1, network_variants=2,
                          seed=1, network_passes=2)
        assert other.network_variants_planned == 2 * (2 + 10)  # 2 planned + the 10 other widths measured before
        assert other.network_variants_measured == 2  # only the new seed's variant, twice; the rest have them


def test_variants_are_reproducible():
    model, shape = build_model("resnet20")
    space = build_layer_space(model, shape)
    a, b = plan_variants(space, 25, seed=7), plan_variants(space, 25, seed=7)
    assert a == b and len(a) == 25
    dense = [i for i, (w, _) in enumerate(a) if w == space.dense_widths()]
    assert dense == [0, 10, 20] and [a[i][1] for i in dense] == [0, 1, 2]
    others = [w for w, _ in a if w != space.dense_widths()]
    assert len({json.dumps(v, sort_keys=True) for v in others}) == 22
    aligned = [w for w in others if all(v % 8 == 0 for v in w.values())]
    assert 3 <= len(aligned) <= 19  # about half of the design lands on multiples of 8


def test_cli_json_summary(tmp_path):
    table = tmp_path / "cli.sqlite"
    proc = run_cli("calibrate", "--model", "demo_cnn", "--points", "3", "--network-variants", "2", "--table",
                   table, *FAST, "--json")
    summary = json.loads(proc.stdout)  # exactly one JSON object on stdout
    for key in ("device", "table", "points_measured", "points_skipped", "network_variants_measured"):
        assert key in summary
    assert summary["device"] == "local" and summary["network_variants_measured"] == 2
    assert summary["points_measured"] == sqlite3.connect(table).execute(
        "SELECT COUNT(*) FROM layer_measurements").fetchone()[0]


def test_cli_errors_are_clear():
    proc = run_cli("calibrate", "--model", "nosuchnet", "--json", check=False)
    assert proc.returncode == 1
    assert "unknown model 'nosuchnet'" in json.loads(proc.stdout)["error"]
    proc = run_cli("calibrate", "--device", "pi", "--json", check=False)
    assert proc.returncode == 1 and "unknown device 'pi'" in json.loads(proc.stdout)["error"]
    proc = run_cli("calibrate", "--model", "demo_cnn", "--input-shape", "1,a", check=False)
    assert proc.returncode == 1 and "--input-shape" in proc.stderr and "Traceback" not in proc.stderr


def _count(db_path, table):
    try:
        db = sqlite3.connect(db_path, timeout=5)
        return db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def test_kill_and_resume_loses_nothing_and_duplicates_nothing(tmp_path):
    table = tmp_path / "kill.sqlite"
    args = [sys.executable, "-m", "edgeprune.cli.main", "calibrate", "--model", "resnet20", "--points", "8",
            "--network-variants", "2", "--table", str(table), "--warmup", "1", "--min-repeats", "3",
            "--min-duration", "0.05", "--json"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while _count(table, "layer_measurements") < 10 and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = _count(table, "layer_measurements")
    assert before >= 10
    db = sqlite3.connect(table)
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    db.close()
    done = json.loads(subprocess.run(args, capture_output=True, text=True, timeout=300, check=True).stdout)
    assert done["points_skipped"] >= before  # nothing measured before the kill is measured again
    db = sqlite3.connect(table)
    total, distinct = db.execute("SELECT COUNT(*), COUNT(DISTINCT signature_key || '|' || c_in || '|' || c_out) "
                                 "FROM layer_measurements").fetchone()
    assert total == distinct == done["points_planned"]
    assert db.execute("SELECT COUNT(*) FROM network_measurements").fetchone()[0] == 2
