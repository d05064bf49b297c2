import json
import shutil
from pathlib import Path

import pytest

from edgeprune.measure.importing import imported_fingerprint, parse_benchmark_log, parse_csv, store_rows
from edgeprune.tables.store import LatencyTable
from conftest import run_cli

HEADER = "model,kwargs,input_shape,latency_ms,energy_mj,device,runtime,threads,source\n"
NET = '''import torch.nn as nn


def build(width=16):
    return nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.ReLU(), nn.Conv2d(width, width, 3, padding=1),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, 10)), (1, 3, 32, 32)
'''
FIXTURES = Path(__file__).parent / "fixtures"
TFLITE = Path(__file__).parents[1] / "device_agents" / "tests" / "fixtures" / "conv3x8_1x3x16x16.tflite"


def write(tmp_path: Path, rows: list[str]) -> Path:
    (tmp_path / "net.py").write_text(NET)
    path = tmp_path / "m.csv"
    path.write_text(HEADER + "".join(r + "\n" for r in rows))
    return path


GOOD = [f'net.py:build,"{{""width"": {w}}}",,{0.1 * w:.2f},,boardx,onnxruntime,1,lab bench' for w in (8, 16, 24)]


def test_csv_rows_go_in_with_provenance_imported(tmp_path):
    rows, errors = parse_csv(write(tmp_path, GOOD + ["resnet20,,,0.55,0.9,boardx,onnxruntime,1,lab bench"]))
    assert errors == []
    with LatencyTable(tmp_path / "t.sqlite") as table:
        assert store_rows(table, rows, "m.csv") == 4
        assert store_rows(table, rows, "m.csv") == 0  # importing the same file again adds nothing
        stored = list(table.rows("network", fingerprint_id=imported_fingerprint("boardx")))
    assert {r["provenance"] for r in stored} == {"imported"}
    result = json.loads(stored[-1]["result_json"])
    assert result["imported"]["source"] == "lab bench" and result["energy_mj"]["per_inference"] == 0.9
    assert result["graph_features"]["nodes"] > 0


def test_bad_rows_are_named_by_line_and_nothing_is_written(tmp_path):
    csv = write(tmp_path, [GOOD[0],
                           'net.py:build,"{""widht"": 8}",,0.2,,boardx,onnxruntime,1,lab',
                           "nope.onnx,,1x3x32x32,0.2,,boardx,onnxruntime,1,lab",
                           "resnet20,,,-1,,boardx,onnxruntime,1,lab",
                           "resnet20,,,,,boardx,onnxruntime,1,lab",
                           "resnet20,,1,3,32,32,0.3,,boardx,onnxruntime,1,lab"])
    proc = run_cli("import", csv, "--table", tmp_path / "t.sqlite", "--json", check=False)
    assert proc.returncode == 1
    lines = json.loads(proc.stdout)["error"].splitlines()
    for line, text in ((3, "widht"), (4, "not found"), (5, "positive"), (6, "latency_ms, energy_mj"),
                       (7, "more field")):
        assert any(f"m.csv line {line}:" in t and text in t for t in lines), (line, lines)
    with LatencyTable(tmp_path / "t.sqlite") as table:
        assert table.count("network") == 0


def test_benchmark_model_log_with_its_tflite(tmp_path):
    pytest.importorskip("ai_edge_litert")
    log = (FIXTURES / "tflite_benchmark_model_op_profiling.txt").read_text()
    (tmp_path / "run.log").write_text(log.replace("mobilenet_v1_1.0_224_quant.tflite", TFLITE.name))
    with pytest.raises(ValueError, match=r"run.log line \d+: the model it ran"):
        parse_benchmark_log(tmp_path / "run.log", "pixel", "adb", None)
    shutil.copy(TFLITE, tmp_path / TFLITE.name)
    row = parse_benchmark_log(tmp_path / "run.log", "pixel", "adb, taskset f0", None)
    assert row.runtime == "litert" and row.threads == 1 and row.latency_ms == pytest.approx(31.7725)
    assert row.input_shape == [1, 3, 16, 16] and row.features["conv_k3s1_tflite.macs"] == 14 * 14 * 8 * 27


def test_import_fit_predict_from_the_cli(tmp_path):
    widths = (8, 12, 16, 24, 32, 40)
    rows = [f'net.py:build,"{{""width"": {w}}}",,{0.05 + 0.002 * w * w:.4f},,boardx,onnxruntime,1,lab'
            for w in widths]
    csv = write(tmp_path, rows)
    run_cli("import", csv)
    fit = json.loads(run_cli("fit", "--platform", "-d", "boardx", "--json").stdout)
    assert fit["networks"]["n"] == len(widths) and fit["networks"]["by_source"] == {"imported": len(widths)}
    proc = run_cli("predict", "-d", "boardx", "-m", f"{tmp_path / 'net.py'}:build", "--json")
    out = json.loads(proc.stdout)
    assert out["predictor"] == "platform" and out["predicted"] > 0
    human = run_cli("predict", "-d", "boardx", "-m", "resnet20")
    assert "using the platform model" in human.stderr


def test_stale_stored_features_are_recomputed(tmp_path, isolated_dirs, monkeypatch):
    import sqlite3

    from edgeprune.costmodel.dataset import Selection
    from edgeprune.costmodel.platform_data import load_platform_set
    from edgeprune.measure.graph_features import FEATURES_VERSION

    rows, _ = parse_csv(write(tmp_path, GOOD))
    sel = Selection(imported_fingerprint("boardx"))
    with LatencyTable(tmp_path / "t.sqlite") as table:
        store_rows(table, rows, "m.csv")
        fresh = load_platform_set(table, sel, "latency").features
        assert json.loads(next(table.rows("network"))["result_json"])["features_version"] == FEATURES_VERSION
    # as rows imported by an edgeprune whose graph features were computed differently
    with sqlite3.connect(tmp_path / "t.sqlite") as db:
        for row_id, text in db.execute("SELECT id, result_json FROM network_measurements").fetchall():
            result = {**json.loads(text), "features_version": "0", "graph_features": {"nodes": 1e9}}
            db.execute("UPDATE network_measurements SET result_json = ? WHERE id = ?", (json.dumps(result), row_id))
    monkeypatch.chdir(tmp_path)  # where the relative model path (net.py:build) resolves
    with LatencyTable(tmp_path / "t.sqlite") as table:
        again = load_platform_set(table, sel, "latency")
        assert again.skipped == [] and again.features == fresh
