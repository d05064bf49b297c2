import json

import pytest
from typer.testing import CliRunner

from edgeprune.cli.main import app
from edgeprune.export.onnx_parity import export_onnx
from edgeprune.measure.settings import MeasureSettings
from edgeprune.models import build_model
from edgeprune.verify import VerifyError, verify
from edgeprune.verify.profile import OTHER, layer_of
from helpers_export import local_provenance, save_dir, synthetic_cost_model

FAST = MeasureSettings(warmup=1, min_repeats=3, min_duration_s=0.01, reference=False)


@pytest.fixture(scope="module")
def artifact(tmp_path_factory):
    net, shape = build_model("demo_cnn")
    d = save_dir(tmp_path_factory.mktemp("verify"), net, shape)
    export_onnx(net, shape, d / "model.onnx")
    return d / "model.onnx", synthetic_cost_model(net, shape), local_provenance(net, shape)


def test_node_names_map_to_layers():
    assert layer_of("/layer1/layer1.0/conv1/Conv") == "layer1.0.conv1"
    assert layer_of("/features/features.3/conv/conv.0/conv.0.0/Conv") == "features.3.conv.0.0"
    assert layer_of("/conv1/Conv") == "conv1" and layer_of("/Relu") is None


def test_verify_local_budget_check_both_ways_with_provenance(artifact):
    path = artifact[0]
    first = verify("local", path, None, "latency", settings=FAST)
    assert first["budget"] is None and first["within_budget"] is None and first["measured"] > 0
    assert first["predicted"] is None  # no cost model fitted for this device in the isolated models dir
    loose, tight = f"{first['measured'] * 20:.6g}ms", f"{first['measured'] / 20:.6g}ms"  # far beyond timing noise
    r = verify("local", path, loose, "latency", settings=FAST, profile=False)
    assert r["within_budget"] is True and r["budget"] == pytest.approx(first["measured"] * 20, rel=1e-5)
    assert r["provenance"]["device"] == "local" and r["provenance"]["runtime"] == "onnxruntime"
    r = verify("local", path, tight, "latency", settings=FAST, profile=False)
    assert r["within_budget"] is False and r["measured"] > r["budget"] * (1 + r["tolerance"])
    e = verify("local", path, None, "energy", settings=FAST, profile=False)
    assert e["budget"] is None and e["within_budget"] is None and e["measured"] > 0
    prov = e["provenance"]
    assert prov["source"] and prov["sensor"] == ("estimate" if prov["kind"] == "estimate" else prov["source"])


def test_relative_budget_needs_a_cost_model(artifact):
    with pytest.raises(VerifyError, match="relative"):
        verify("local", artifact[0], "0.5", "latency", settings=FAST)


def test_a_cost_model_of_another_device_or_architecture_is_refused(artifact, tmp_path):
    path, cm, prov = artifact
    other_device = cm.save(tmp_path / "other.json", {**prov, "device": {"name": "pi", "fingerprint_id": "0" * 16}})
    with pytest.raises(VerifyError, match="not this device"):
        verify("local", path, None, "latency", cost_model_path=other_device, settings=FAST, profile=False)
    other_arch = cm.save(tmp_path / "arch.json", {**prov, "model": {"name": "x", "architecture_hash": "0" * 16}})
    with pytest.raises(VerifyError, match="not this one"):
        verify("local", path, None, "latency", cost_model_path=other_arch, settings=FAST, profile=False)


def test_prediction_error_uses_the_drift_corrected_latency_like_compress(artifact, tmp_path):
    path, cm, prov = artifact
    dense = float(cm.predict([{}])[0])
    cm_path = cm.save(tmp_path / "cm.json", {**prov, "reference_ms": 0.25})
    r = verify("local", path, None, "latency", cost_model_path=cm_path, profile=False,
               settings=MeasureSettings(warmup=1, min_repeats=3, min_duration_s=0.01, reference=True))
    corrected = r["measured_drift_corrected"]
    assert corrected is not None and corrected != r["measured"]
    assert r["prediction_error"] == pytest.approx(corrected / dense - 1)


def test_a_given_cost_model_is_checked_and_drift_corrected_like_a_saved_one(artifact):
    """edgeprune.verify(cost_model=<fit's result>) refuses another device or architecture and takes the reference
    speed from its provenance, as for a cost model given by path (and as compress does)."""
    import edgeprune
    from edgeprune.api import FittedCostModel

    path, cm, prov = artifact
    other_device = FittedCostModel(cm, {**prov, "device": {"name": "pi", "fingerprint_id": "0" * 16}})
    with pytest.raises(VerifyError, match="not this device"):
        edgeprune.verify(path, cost_model=other_device, measure=FAST)
    other_arch = FittedCostModel(cm, {**prov, "model": {"name": "x", "architecture_hash": "0" * 16}})
    with pytest.raises(VerifyError, match="not this one"):
        edgeprune.verify(path, cost_model=other_arch, measure=FAST)
    r = edgeprune.verify(path, cost_model=FittedCostModel(cm, {**prov, "reference_ms": 0.25}),
                         measure=MeasureSettings(warmup=1, min_repeats=3, min_duration_s=0.01, reference=True))
    corrected = r["measured_drift_corrected"]
    assert corrected is not None and corrected != r["measured"]
    assert r["prediction_error"] == pytest.approx(corrected / float(cm.predict([{}])[0]) - 1)


def test_cost_model_prediction_relative_budget_and_layer_breakdown(artifact, tmp_path):
    path, cm, prov = artifact
    cm_path = cm.save(tmp_path / "cm.json", prov)
    r = verify("local", path, "0.5", "latency", cost_model_path=cm_path, settings=FAST)
    dense = float(cm.predict([{}])[0])
    assert r["predicted"] == pytest.approx(dense) and r["budget"] == pytest.approx(0.5 * dense)
    rows = {row["layer"]: row for row in r["layers"]}
    assert {"conv1", "conv2", "conv3", "linear", OTHER} <= set(rows)
    for name in ("conv1", "conv2", "conv3", "linear"):
        assert rows[name]["measured_ms"] > 0 and rows[name]["predicted"] == pytest.approx(cm.layer_costs(
            cm.dense_widths_)[name])
    assert rows[OTHER]["predicted"] is None


def test_a_relative_budget_is_judged_beside_compress_dense_model(artifact, tmp_path):
    """With compress's dense.onnx beside the artifact, a relative budget is judged on the ratio measured alongside."""
    import shutil

    path, cm, prov = artifact
    cm_path = cm.save(tmp_path / "cm.json", prov)
    d = tmp_path / "out"
    shutil.copytree(path.parent, d)
    big, shape = build_model("demo_cnn", widths=(64, 128, 256))  # twice as wide: costs more than the artifact
    export_onnx(big, shape, d / "dense.onnx")
    r = verify("local", d / "model.onnx", "0.95", "latency", cost_model_path=cm_path, settings=FAST, tolerance=0)
    b = r["beside_dense"]
    assert b["pairs"] >= 3 and 0 < b["ratio"] < 0.95 and b["dense_measured"] > r["measured"]
    assert r["within_budget"] is True  # though the cost model prices the artifact at its full dense cost
    assert verify("local", path, "0.95", "latency", cost_model_path=cm_path, settings=FAST)["beside_dense"] is None


def test_cli_exit_code_and_json(artifact):
    path = artifact[0]
    ok = CliRunner().invoke(app, ["verify", str(path), "--budget", "10s", "--json"])
    assert ok.exit_code == 0, ok.output
    out = json.loads(ok.stdout)
    assert out["within_budget"] is True and {"measured", "predicted", "budget", "provenance"} <= set(out)
    over = CliRunner().invoke(app, ["verify", str(path), "--budget", "1ns", "--json"])
    assert over.exit_code == 3 and json.loads(over.stdout)["within_budget"] is False  # 3: over budget, not 1
    bad = CliRunner().invoke(app, ["verify", str(path), "--budget", "3mJ", "--json"])  # energy unit, latency metric
    assert bad.exit_code == 1 and "error" in json.loads(bad.stdout)


def test_node_names_of_nested_models_map_to_module_names():
    import onnx
    import torch.nn as nn

    from edgeprune.formats import to_onnx_bytes

    net, shape = build_model("mobilenetv2")
    convs = {n for n, m in net.named_modules() if isinstance(m, nn.Conv2d)}
    nodes = [n.name for n in onnx.load_from_string(to_onnx_bytes(net, shape)).graph.node if n.op_type == "Conv"]
    assert {layer_of(n) for n in nodes} == convs


def test_a_negative_tolerance_is_refused_before_measuring(tmp_path):
    with pytest.raises(VerifyError, match="--tolerance must be >= 0"):  # not the missing file, looked at later
        verify("local", tmp_path / "missing.onnx", "3ms", tolerance=-1)
