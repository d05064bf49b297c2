"""Turn a torch module into the bytes a runtime loads (ONNX, or TFLite with the extra installed)."""
from __future__ import annotations

import contextlib
import copy
import io
import os
import warnings

import torch
import torch.nn as nn
from edgeprune.errors import EdgepruneError

FORMATS = {"onnxruntime": "onnx", "litert": "tflite"}
ONNX_OPSET = 17


class ExportError(EdgepruneError):
    """A model could not be exported to the runtime's format."""


def runtime_format(runtime: str) -> str:
    """File format a runtime reads."""
    try:
        return FORMATS[runtime]
    except KeyError:
        raise ValueError(f"unknown runtime {runtime!r}; choose one of {sorted(FORMATS)}") from None


def on_cpu(model: nn.Module) -> nn.Module:
    """``model`` itself when it is on the CPU, else a CPU copy (a model fine-tuned on a GPU is exported from it)."""
    if all(t.device.type == "cpu" for t in [*model.parameters(), *model.buffers()]):
        return model
    return copy.deepcopy(model).cpu()


def to_onnx_bytes(model: nn.Module, input_shape: tuple[int, ...]) -> bytes:
    """Export with static shapes; input/output named ``input``/``output``; BN folded into conv (eval mode)."""
    model = on_cpu(model).eval()
    example = torch.zeros(*input_shape)
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        try:
            # The TorchScript exporter is ~100x faster than dynamo for small graphs, which matters for
            # calibration where hundreds of single-layer models are exported.
            torch.onnx.export(model, (example,), buf, dynamo=False, opset_version=ONNX_OPSET,
                              input_names=["input"], output_names=["output"], do_constant_folding=True)
        except (RuntimeError, TypeError, ValueError) as exc:
            raise ExportError(f"ONNX export failed: {exc}") from exc
    return buf.getvalue()


def to_tflite_bytes(model: nn.Module, input_shape: tuple[int, ...]) -> bytes:
    """Convert through litert-torch (install the ``tflite`` extra)."""
    try:
        import litert_torch
    except ImportError as exc:
        raise ExportError("TFLite export needs litert-torch: pip install 'edgeprune[tflite]' "
                          "(with -c constraints.txt, so pip keeps the tested torch)") from exc
    example = torch.zeros(*input_shape)
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink), \
            warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            converted = litert_torch.convert(on_cpu(model).eval(), (example,))
            # model_content() prints progress too: keep it inside the redirect (stdout carries --json output).
            return bytes(converted.model_content())
        except Exception as exc:  # litert-torch raises many unrelated types for unsupported graphs
            raise ExportError(f"TFLite conversion failed: {exc}") from exc


def export_model(model: nn.Module, input_shape: tuple[int, ...], runtime: str) -> bytes:
    """Bytes of ``model`` in the format ``runtime`` reads."""
    fmt = runtime_format(runtime)
    return to_onnx_bytes(model, input_shape) if fmt == "onnx" else to_tflite_bytes(model, input_shape)
