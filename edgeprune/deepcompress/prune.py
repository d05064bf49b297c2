"""Per-layer magnitude pruning of conv/linear weights and retraining with fixed masks."""
from __future__ import annotations

import torch
from torch import nn

from edgeprune.data.bundle import DataBundle
from edgeprune.train import fine_tune
from edgeprune.progress import SILENT, Progress


def prunable(model: nn.Module) -> dict[str, nn.Module]:
    """Conv and linear layers by qualified name, in model order."""
    return {n: m for n, m in model.named_modules() if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear))}


def magnitude_masks(model: nn.Module, sparsity: float) -> dict[str, torch.Tensor]:
    """Keep-masks that zero the `sparsity` fraction of smallest-|w| weights in every layer (per-layer quantile)."""
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity}")
    masks = {}
    for name, layer in prunable(model).items():
        w = layer.weight.detach().abs().flatten()
        n_prune = int(round(sparsity * w.numel()))
        keep = torch.ones(w.numel(), dtype=torch.bool)
        if n_prune > 0:
            keep[torch.argsort(w, stable=True)[:n_prune]] = False
        masks[name] = keep.view_as(layer.weight)
    return masks


@torch.no_grad()
def apply_masks(model: nn.Module, masks: dict[str, torch.Tensor]) -> None:
    """Zero the pruned weights in place."""
    layers = prunable(model)
    for name, keep in masks.items():
        layers[name].weight.mul_(keep.to(layers[name].weight.dtype))


def sparsity_of(model: nn.Module) -> float:
    """Fraction of zero weights over all conv/linear weights."""
    ws = [m.weight.detach() for m in prunable(model).values()]
    return float(sum(int((w == 0).sum()) for w in ws) / max(sum(w.numel() for w in ws), 1))


def retrain(model: nn.Module, masks: dict[str, torch.Tensor], data: DataBundle, epochs: int,
            lr: float = 0.01, reporter: Progress = SILENT) -> dict:
    """Fine-tune with pruned weights held at zero (gradients masked); return the final validation metrics."""
    apply_masks(model, masks)
    if epochs <= 0:
        from edgeprune.train import evaluate

        return evaluate(model, data.val)
    layers = prunable(model)
    hooks = [layers[n].weight.register_hook(lambda g, k=k: g * k.to(g.dtype)) for n, k in masks.items()]
    try:
        result = fine_tune(model, data, epochs, lr=lr, device="cpu", reporter=reporter, phase="retraining")
    finally:
        for h in hooks:
            h.remove()
    apply_masks(model, masks)
    return dict(result.final)
