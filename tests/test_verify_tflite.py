"""verify on .tflite artifacts (fp32 and int8): the prediction comes from the channels.json beside the file."""
import pytest
import torch

from edgeprune.costmodel.store import default_model_path
from edgeprune.export.quantize import quantize_tflite_int8
from edgeprune.export.tflite import export_tflite
from edgeprune.measure.settings import MeasureSettings
from edgeprune.models import build_model
from edgeprune.models.layer_space import build_layer_space
from edgeprune.prune.artifact import save_compressed
from edgeprune.structure.physical import apply_kept
from edgeprune.verify import VerifyError, verify
from helpers_export import local_provenance, synthetic_cost_model

FAST = MeasureSettings(warmup=1, min_repeats=3, min_duration_s=0.01, reference=False)


@pytest.fixture(scope="module")
def pruned_dir(tmp_path_factory):
    """A compressed demo_cnn (every group at half width) with fp32 and int8 .tflite files beside channels.json."""
    net, shape = build_model("demo_cnn")
    space = build_layer_space(net, shape)
    kept = {g.name: list(range(g.width // 2)) for g in space.prunable_groups}
    pruned = apply_kept(net, space, kept)
    d = save_compressed(tmp_path_factory.mktemp("tfl"), pruned, "demo_cnn", shape, kept, {"data": "digits"})
    export_tflite(pruned, shape, d / "model.tflite")
    torch.manual_seed(0)
    (d / "model.int8.tflite").write_bytes(quantize_tflite_int8(pruned, shape, torch.rand(32, *shape[1:])))
    cm = synthetic_cost_model(net, shape)
    widths = {name: len(idxs) for name, idxs in kept.items()}
    return d, cm, float(cm.predict([widths])[0])


def _install(cm, runtime: str):
    return cm.save(default_model_path("local", "demo_cnn", runtime, 1, "latency", build_model("demo_cnn")[1]),
                   local_provenance(*build_model("demo_cnn"), runtime={"name": runtime}))


@pytest.mark.parametrize("name, int8", [("model.tflite", False), ("model.int8.tflite", True)])
def test_tflite_artifact_is_predicted_from_its_channels_json(pruned_dir, name, int8):
    d, cm, expected = pruned_dir
    path = _install(cm, "litert")
    r = verify("local", d / name, "0.9", "latency", settings=FAST)
    assert r["provenance"]["runtime"] == "litert" and r["measured"] > 0
    assert r["predicted"] == pytest.approx(expected) and r["predicted"] < 0.9 * r["dense_predicted"]
    assert r["cost_model"] == str(path) and r["cost_model_runtime"] == "litert"
    assert r["budget"] == pytest.approx(0.9 * r["dense_predicted"])
    assert r["int8"] is int8
    assert [w for w in r["warnings"] if "int8" in w] == ([] if not int8 else r["warnings"])


def test_tflite_falls_back_to_the_onnxruntime_cost_model_and_says_so(pruned_dir):
    d, cm, expected = pruned_dir
    _install(cm, "onnxruntime")
    r = verify("local", d / "model.tflite", None, "latency", settings=FAST)
    assert r["predicted"] == pytest.approx(expected) and r["cost_model_runtime"] == "onnxruntime"
    assert len(r["warnings"]) == 1 and "fitted on onnxruntime" in r["warnings"][0]


def test_no_cost_model_leaves_the_prediction_empty_and_a_missing_one_is_an_error(pruned_dir, tmp_path):
    d, _, _ = pruned_dir
    r = verify("local", d / "model.tflite", None, "latency", settings=FAST)
    assert r["predicted"] is None and r["warnings"] == []
    with pytest.raises(VerifyError, match="not found"):
        verify("local", d / "model.tflite", None, "latency", cost_model_path=tmp_path / "none.json", settings=FAST)


def test_a_file_spec_model_finds_its_cost_model_by_architecture(tmp_path, monkeypatch):
    """channels.json records `file.py:fn` with an absolute path; fit keyed the cost model by the spec as typed."""
    (tmp_path / "mine.py").write_text("from edgeprune.models.demo_cnn import demo_cnn\n\n\n"
                                      "def build():\n    return demo_cnn(), (1, 1, 8, 8)\n")
    monkeypatch.chdir(tmp_path)
    net, shape = build_model("mine.py:build")
    space = build_layer_space(net, shape)
    kept = {g.name: list(range(g.width // 2)) for g in space.prunable_groups}
    pruned = apply_kept(net, space, kept)
    d = save_compressed(tmp_path / "out", pruned, "mine.py:build", shape, kept, {})
    export_tflite(pruned, shape, d / "model.tflite")
    cm = synthetic_cost_model(net, shape)
    path = cm.save(default_model_path("local", "mine.py:build", "litert", 1, "latency", shape),
                   local_provenance(net, shape, "mine.py:build", runtime={"name": "litert"}))
    r = verify("local", d / "model.tflite", None, "latency", settings=FAST)
    assert r["cost_model"] == str(path) and r["predicted"] == pytest.approx(
        float(cm.predict([{g: len(i) for g, i in kept.items()}])[0]))
