"""int8 post-training quantization with calibration on real samples, and its accuracy against fp32."""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

from edgeprune.errors import EdgepruneError
from edgeprune.export.samples import take_labelled
from edgeprune.export.tflite import run_tflite


class QuantizeError(EdgepruneError):
    """Post-training quantization failed or is not available here."""


class _Reader(CalibrationDataReader):
    """onnxruntime CalibrationDataReader over real samples, one batch of the model's static size at a time."""

    def __init__(self, name: str, x: np.ndarray, batch: int):
        self._feeds = iter([{name: x[i:i + batch]} for i in range(0, len(x) - batch + 1, batch)])

    def get_next(self):
        return next(self._feeds, None)


def quantize_onnx_int8(onnx_bytes: bytes, calib: torch.Tensor) -> bytes:
    """Static int8 QDQ model, per-channel weights, activation ranges from ``calib`` (NCHW inputs)."""
    sess = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    reader = _Reader(inp.name, calib.numpy().astype(np.float32), int(inp.shape[0]))
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        src.write_bytes(onnx_bytes)
        quantize_static(str(src), str(dst), reader, quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QInt8, weight_type=QuantType.QInt8)
        return dst.read_bytes()


def quantize_tflite_int8(model, input_shape, calib: torch.Tensor, nhwc: bool = False) -> bytes:
    """Full-int8 TFLite via LiteRT's ai-edge-quantizer (static, calibrated on ``calib``); QuantizeError if absent."""
    from edgeprune.export.tflite import tflite_bytes

    try:
        from ai_edge_quantizer import quantizer, recipe
    except ImportError as exc:
        raise QuantizeError("TFLite int8 needs ai-edge-quantizer: pip install ai-edge-quantizer") from exc
    fp32 = tflite_bytes(model, input_shape, nhwc)
    feed = calib.permute(0, 2, 3, 1).numpy() if nhwc else calib.numpy()
    batch = int(input_shape[0])
    try:  # ai-edge-quantizer raises assorted types for unsupported graphs
        q = quantizer.Quantizer(fp32, recipe.static_wi8_ai8())
        sig, name = _signature_input(fp32)
        data = {sig: [{name: feed[i:i + batch].astype(np.float32)} for i in range(0, len(feed) - batch + 1, batch)]}
        with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):  # it prints a size summary
            result = q.quantize(q.calibrate(data))
    except Exception as exc:
        raise QuantizeError(f"TFLite int8 quantization failed: {exc}") from exc
    return bytes(result.quantized_model)


def _signature_input(data: bytes) -> tuple[str, str]:
    """(signature key, input name) of the model's first signature, the form the quantizer's calibration takes."""
    from edgeprune.export.tflite import interpreter_class

    interp = interpreter_class()(model_content=data)
    key = next(iter(interp.get_signature_list()))
    return key, next(iter(interp.get_signature_runner(key).get_input_details()))


def onnx_accuracy(onnx_bytes: bytes, x: torch.Tensor, y: torch.Tensor) -> float:
    """Top-1 accuracy of an ONNX model on NCHW inputs ``x``."""
    sess = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    batch, xs = int(inp.shape[0]), x.numpy()
    n = len(xs) - len(xs) % batch
    out = np.concatenate([sess.run(None, {inp.name: xs[i:i + batch]})[0] for i in range(0, n, batch)])
    return float(np.mean(out.argmax(1) == y.numpy()[:n]))


def tflite_accuracy(tflite_bytes: bytes, x: torch.Tensor, y: torch.Tensor, nhwc: bool = False) -> float:
    """Top-1 accuracy of a TFLite model on NCHW inputs ``x`` (permuted when the file is NHWC)."""
    feed = x.permute(0, 2, 3, 1).contiguous().numpy() if nhwc else x.numpy()
    out = run_tflite(tflite_bytes, feed)
    return float(np.mean(out.argmax(1) == y.numpy()[:len(out)]))


def accuracy_change(fp32_acc: float, int8_acc: float, samples: int) -> dict:
    """The figures reported for a quantized artifact."""
    return {"samples": samples, "fp32_accuracy": fp32_acc, "int8_accuracy": int8_acc,
            "accuracy_change": int8_acc - fp32_acc}


def calibration_and_val(data, calib_samples: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Calibration inputs from the training split, labelled validation inputs."""
    calib, _ = take_labelled(data.train, calib_samples)
    x, y = take_labelled(data.val)
    return calib, x, y
