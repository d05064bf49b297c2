"""Runtime registry and backends with real onnxruntime / LiteRT models."""
import numpy as np
import onnxruntime
import pytest

from agent_fixtures import conv_model, tflite_model  # noqa: F401 (fixtures)
from agent_testlib import conv_relu_bytes, int64_input_bytes
from edgeprune_agent import ModelInvalid, RuntimeUnavailable
from edgeprune_agent import runtimes
from edgeprune_agent.inputs import make_rng, random_input, static_shape


def test_onnxruntime_loads_and_runs(conv_model):
    model = runtimes.load_model("onnxruntime", conv_model, threads=1)
    assert model.inputs == {"x": {"shape": [1, 3, 16, 16], "dtype": "float32"}}
    model.run()


def test_int64_inputs_are_fed_with_their_dtype():
    model = runtimes.load_model("onnxruntime", int64_input_bytes())
    assert model.inputs == {"ids": {"shape": [1, 4], "dtype": "int64"}}


@pytest.mark.parametrize("dims", [["N", 3, 16, 16], [1, 3, None, 16]])
def test_dynamic_dims_are_rejected(dims):
    with pytest.raises(ModelInvalid, match="static shapes"):
        runtimes.load_model("onnxruntime", conv_relu_bytes(dims))


def test_garbage_is_model_invalid_with_runtime_text():
    with pytest.raises(ModelInvalid, match="onnxruntime could not load the model.*INVALID_PROTOBUF"):
        runtimes.load_model("onnxruntime", b"this is not an onnx model" * 10)


def test_tflite_sent_to_onnxruntime_gets_a_hint(tflite_model):
    with pytest.raises(ModelInvalid, match="runtime=litert"):
        runtimes.load_model("onnxruntime", tflite_model)


def test_litert_loads_and_runs(tflite_model):
    model = runtimes.load_model("litert", tflite_model, threads=2)
    assert model.inputs == {"serving_default_args_0": {"shape": [1, 3, 16, 16], "dtype": "float32"}}
    model.run()


def test_litert_checks_magic_before_loading(conv_model):
    with pytest.raises(ModelInvalid, match="TFL3"):
        runtimes.load_model("litert", conv_model)


def test_litert_bad_flatbuffer_with_magic():
    with pytest.raises(ModelInvalid, match="LiteRT could not load the model"):
        runtimes.load_model("litert", b"\x1c\x00\x00\x00TFL3" + b"\xff" * 64)


def test_unknown_runtime_is_value_error(conv_model):
    with pytest.raises(ValueError, match="unknown runtime 'tensorrt'.*litert, onnxruntime"):
        runtimes.load_model("tensorrt", conv_model)


def test_missing_package_gives_install_hint(monkeypatch, conv_model):
    entry = dict(runtimes.KNOWN_RUNTIMES["litert"], modules=("edgeprune_no_such_module",))
    monkeypatch.setitem(runtimes.KNOWN_RUNTIMES, "litert", entry)
    with pytest.raises(RuntimeUnavailable, match="pip install ai-edge-litert"):
        runtimes.load_model("litert", conv_model)
    assert "litert" not in runtimes.runtime_versions()


def test_runtime_versions_report_installed():
    versions = runtimes.runtime_versions()
    assert versions["onnxruntime"] == onnxruntime.__version__
    assert set(versions) <= set(runtimes.known_runtimes())


def test_random_inputs_are_deterministic_and_typed():
    a = random_input([2, 3], np.float32, make_rng())
    b = random_input([2, 3], np.float32, make_rng())
    assert a.dtype == np.float32 and np.array_equal(a, b)
    q = random_input([1000], np.int8, make_rng())
    assert q.dtype == np.int8 and q.min() < -100 and q.max() > 100
    ids = random_input([100], np.int64, make_rng())
    assert set(np.unique(ids)) <= {0, 1}
    with pytest.raises(ModelInvalid, match="unsupported input dtype"):
        random_input([1], np.dtype("U4"), make_rng())


def test_static_shape():
    assert static_shape("x", [1, np.int32(3)]) == [1, 3]
    for dims in (["batch", 3], [None], [-1, 3]):
        with pytest.raises(ModelInvalid, match="export with static shapes"):
            static_shape("x", dims)
