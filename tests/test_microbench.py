import importlib.util

import numpy as np
import onnxruntime as ort
import pytest

from edgeprune.measure import microbench
from edgeprune.models.layer_space import LayerSignature

CONV = LayerSignature("conv", (3, 3), (2, 2), (1, 1), (1, 1), (16, 16), False, True, "relu")


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEPRUNE_CACHE_DIR", str(tmp_path))


@pytest.mark.parametrize("sig,c_in,c_out,out_shape", [
    (CONV, 5, 7, (1, 7, 8, 8)),
    (LayerSignature("dwconv", (3, 3), (1, 1), (1, 1), (1, 1), (8, 8), False, True, "relu6"), 6, 6, (1, 6, 8, 8)),
    (LayerSignature("linear", bias=True), 12, 10, (1, 10)),
])
def test_layer_model_runs_in_onnxruntime(sig, c_in, c_out, out_shape):
    data = microbench.layer_model_bytes(sig, c_in, c_out, "onnxruntime")
    sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    out = sess.run(None, {inp.name: np.random.rand(*inp.shape).astype(np.float32)})[0]
    assert out.shape == out_shape
    if sig.act:
        assert out.min() >= 0  # activation is part of the micro-benchmark


def test_bn_is_folded_into_conv():
    import onnx

    model = onnx.load_from_string(microbench.layer_model_bytes(CONV, 4, 4, "onnxruntime"))
    assert [n.op_type for n in model.graph.node] == ["Conv", "Relu"]


def test_cache_reuses_exported_file(tmp_path):
    a = microbench.layer_model_bytes(CONV, 3, 9, "onnxruntime")
    files = list((tmp_path / "microbench").iterdir())
    assert len(files) == 1
    files[0].write_bytes(a + b"")  # same content; now check a second call reads it instead of exporting
    mtime = files[0].stat().st_mtime_ns
    assert microbench.layer_model_bytes(CONV, 3, 9, "onnxruntime") == a
    assert files[0].stat().st_mtime_ns == mtime


def test_invalid_requests():
    with pytest.raises(ValueError, match="c_in == c_out"):
        microbench.build_layer_model(LayerSignature("dwconv", (3, 3), in_hw=(4, 4)), 3, 4)
    with pytest.raises(ValueError, match=">= 1"):
        microbench.build_layer_model(CONV, 0, 4)
    with pytest.raises(ValueError, match="unknown runtime"):
        microbench.layer_model_bytes(CONV, 3, 4, "tensorrt")


@pytest.mark.skipif(importlib.util.find_spec("litert_torch") is None, reason="tflite extra not installed")
def test_tflite_layer_model_runs_in_litert():
    from ai_edge_litert.interpreter import Interpreter

    data = microbench.layer_model_bytes(CONV, 4, 6, "litert")
    assert data[4:8] == b"TFL3"
    interp = Interpreter(model_content=data)
    interp.allocate_tensors()
    inp = interp.get_input_details()[0]
    interp.set_tensor(inp["index"], np.random.rand(*inp["shape"]).astype(np.float32))
    interp.invoke()
    assert tuple(interp.get_tensor(interp.get_output_details()[0]["index"]).shape) == (1, 6, 8, 8)
