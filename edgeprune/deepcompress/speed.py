"""Theoretical speed-up from unstructured sparsity next to measured onnxruntime latency (dense vs pruned)."""
from __future__ import annotations

import torch
from torch import nn

from .prune import prunable

NOTE = ("unstructured zeros do not speed up dense runtimes: onnxruntime still multiplies every zero, so the "
        "theoretical speed-up needs a sparse kernel or hardware (EIE) to appear")


def layer_macs(model: nn.Module, input_shape: tuple[int, ...]) -> dict[str, int]:
    """Dense MACs of every conv/linear layer for one forward pass of `input_shape`."""
    macs, hooks = {}, []
    for name, m in prunable(model).items():
        def hook(mod, inp, out, name=name):
            per_out = mod.weight[0].numel()
            macs[name] = int(out.numel() * per_out)
        hooks.append(m.register_forward_hook(hook))
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(input_shape))
    finally:
        for h in hooks:
            h.remove()
    return macs


def theoretical_speedup(model: nn.Module, input_shape: tuple[int, ...]) -> dict:
    """Dense MACs over non-zero MACs of the sparse layers (1/(1-sparsity) per layer, weighted)."""
    macs = layer_macs(model, input_shape)
    layers = prunable(model)
    nz = {n: float((layers[n].weight != 0).float().mean()) for n in macs}
    dense = sum(macs.values())
    sparse = sum(macs[n] * nz[n] for n in macs)
    return {"dense_macs": dense, "nonzero_macs": int(round(sparse)), "speedup": dense / max(sparse, 1.0)}


def measured_latency_ms(model: nn.Module, input_shape: tuple[int, ...], min_duration_s: float = 0.2,
                        device: str = "local") -> float:
    """Median onnxruntime latency on ``device`` of the model exported as dense ONNX."""
    from edgeprune.formats import to_onnx_bytes
    from edgeprune.measure.registry import open_device
    from edgeprune.measure.settings import MeasureSettings

    settings = MeasureSettings(min_duration_s=min_duration_s)
    return open_device(device).measure(to_onnx_bytes(model, input_shape), "onnxruntime", settings).latency.median


def speed_report(dense: nn.Module, pruned: nn.Module, input_shape: tuple[int, ...],
                 min_duration_s: float = 0.2) -> dict:
    """Theoretical and measured speed-up side by side, with the plain-words caveat."""
    theory = theoretical_speedup(pruned, input_shape)
    d_ms = measured_latency_ms(dense, input_shape, min_duration_s)
    p_ms = measured_latency_ms(pruned, input_shape, min_duration_s)
    return {"theoretical_speedup": theory["speedup"], "dense_macs": theory["dense_macs"],
            "nonzero_macs": theory["nonzero_macs"], "dense_latency_ms": d_ms, "pruned_latency_ms": p_ms,
            "measured_speedup": d_ms / p_ms, "runtime": "onnxruntime (dense kernels)", "note": NOTE}
