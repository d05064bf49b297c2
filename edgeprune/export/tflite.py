"""Export to TFLite through litert-torch (optionally with NHWC I/O) and check it against torch in LiteRT."""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from edgeprune.export.onnx_parity import ParityError, ParityReport, output_scale
from edgeprune.export.samples import take_samples
from edgeprune.files import atomic_write
from edgeprune.formats import ExportError, on_cpu, to_tflite_bytes


class NHWCInput(nn.Module):
    """Wraps an NCHW model so it takes NHWC input (the layout TFLite kernels prefer)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.permute(0, 3, 1, 2))


def nhwc_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    """(N, C, H, W) → (N, H, W, C)."""
    n, c, h, w = shape
    return (n, h, w, c)


def interpreter_class():
    """LiteRT's Interpreter, or tflite-runtime's when ai-edge-litert is not installed."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        try:
            from tflite_runtime.interpreter import Interpreter
        except ImportError as exc:
            raise ExportError("TFLite parity needs ai-edge-litert (or tflite-runtime): pip install ai-edge-litert") \
                from exc
    return Interpreter


def run_tflite(tflite_bytes: bytes, x: np.ndarray) -> np.ndarray:
    """Float outputs of the TFLite model for float inputs ``x`` (in the file's layout), batch by batch."""
    from edgeprune_agent.backends.litert import allocated_interpreter

    try:
        interp = allocated_interpreter(interpreter_class(), tflite_bytes, 1, default_delegates=True)
    except RuntimeError as exc:
        if "delegate" not in str(exc).lower():
            raise
        # XNNPACK refuses some int8 graphs; the built-in kernels compute the same model.
        interp = allocated_interpreter(interpreter_class(), tflite_bytes, 1, default_delegates=False)
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    batch = int(inp["shape"][0])
    outs = []
    for i in range(0, len(x), batch):
        interp.set_tensor(inp["index"], _to_input(x[i:i + batch], inp))
        interp.invoke()
        outs.append(_from_output(interp.get_tensor(out["index"]), out))
    return np.concatenate(outs)


def _to_input(x: np.ndarray, detail: dict) -> np.ndarray:
    """Float input in the tensor's dtype, quantized with its scale and zero point when it is an integer tensor."""
    dtype = detail["dtype"]
    if not np.issubdtype(dtype, np.integer):
        return x.astype(dtype)
    scale, zero = detail["quantization"]
    info = np.iinfo(dtype)
    return np.clip(np.round(x / scale) + zero, info.min, info.max).astype(dtype)


def _from_output(y: np.ndarray, detail: dict) -> np.ndarray:
    """Float output, dequantized when the tensor is an integer one."""
    if not np.issubdtype(detail["dtype"], np.integer):
        return y.astype(np.float32)
    scale, zero = detail["quantization"]
    return (y.astype(np.float32) - zero) * scale


def check_tflite_parity(model: nn.Module, tflite_bytes: bytes, x: torch.Tensor, nhwc: bool = False,
                        atol: float = 1e-3, min_agreement: float = 0.99) -> ParityReport:
    """Max abs difference and top-1 agreement between torch (NCHW ``x``) and LiteRT (``x`` permuted if NHWC)."""
    with torch.no_grad():
        ref = on_cpu(model).eval()(x).numpy()
    feed = x.permute(0, 2, 3, 1).contiguous().numpy() if nhwc else x.numpy()
    got = run_tflite(tflite_bytes, feed).astype(np.float32)
    diff = float(np.abs(ref - got).max())
    agree = float(np.mean(ref.argmax(1) == got.argmax(1)))
    scale = output_scale([ref])
    return ParityReport(len(x), diff, agree, atol, diff <= atol * scale and agree >= min_agreement,
                        "NHWC" if nhwc else "NCHW", scale)


def tflite_bytes(model: nn.Module, input_shape: tuple[int, ...], nhwc: bool = False) -> bytes:
    """TFLite flatbuffer of ``model``; with ``nhwc`` its input is (N, H, W, C)."""
    # litert-torch prints progress lines on stdout while serialising (after to_tflite_bytes' own redirect
    # ends), which would break `--json`'s one-object stdout; keep it quiet here.
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
        if nhwc:
            return to_tflite_bytes(NHWCInput(model.eval()), nhwc_shape(input_shape))
        return to_tflite_bytes(model, input_shape)


def export_tflite(model: nn.Module, input_shape: tuple[int, ...], path: str | Path, loader=None,
                  samples: int = 64, nhwc: bool = False, atol: float = 1e-3,
                  min_agreement: float = 0.99) -> ParityReport | None:
    """Write ``path`` and, given a loader, compare LiteRT's outputs with torch; ParityError when they differ."""
    data = tflite_bytes(model, input_shape, nhwc)
    path = atomic_write(path, data)
    if loader is None:
        return None
    report = check_tflite_parity(model, data, take_samples(loader, samples), nhwc, atol, min_agreement)
    if not report.passed:
        raise ParityError(f"{path}: TFLite output differs from torch (max |diff| {report.max_abs_diff:.2e} > "
                          f"{atol:g} × output scale {report.output_scale:.3g} or top-1 agreement "
                          f"{report.top1_agreement:.1%} < {min_agreement:.0%})")
    return report
