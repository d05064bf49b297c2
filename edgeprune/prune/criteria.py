"""Data-driven channel criteria: first-order Taylor gradients and APoZ (average percentage of zeros)."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch_pruning as tp

from edgeprune.train.evaluate import model_device
from edgeprune.train.objective import LossFn, batch_loss

WEIGHTED = (nn.modules.conv._ConvNd, nn.Linear)


def accumulate_gradients(model: nn.Module, batches: list, loss_fn: LossFn | None = None) -> None:
    """Loss (cross-entropy, or ``loss_fn``) gradients summed over ``batches`` into every ``.grad`` (eval mode: BN
    statistics unchanged)."""
    model.eval()
    model.zero_grad(set_to_none=True)
    for batch in batches:
        batch_loss(model, batch, loss_fn).backward()


def taylor_filter(layer: nn.Module, idxs: list[int]) -> torch.Tensor:
    """|w · ∂L/∂w| summed over each of the filters ``idxs`` (used for depthwise convs torch-pruning skips)."""
    return (layer.weight.detach() * layer.weight.grad)[idxs].flatten(1).abs().sum(1)


def consumers(dg: tp.DependencyGraph, group) -> list[tuple[nn.Module, list[int], list[int]]]:
    """(layer, its input-channel indices, the group channels they belong to) of every conv/linear reading the group."""
    return [(dep.layer, list(idxs), list(group[i].root_idxs)) for i, (dep, idxs) in enumerate(group)
            if isinstance(dep.layer, WEIGHTED) and dg.is_in_channel_pruning_fn(dep.pruning_fn)]


def zero_fractions(model: nn.Module, modules: set[nn.Module], batches: list) -> dict[nn.Module, torch.Tensor]:
    """Per input channel of each of ``modules``: the share of exactly-zero entries it received over ``batches``."""
    zeros: dict[nn.Module, torch.Tensor] = {}
    counts: dict[nn.Module, int] = {}

    def record(mod, inp, out):
        x = inp[0].detach()
        dims = [d for d in range(x.dim()) if d != 1]
        zeros[mod] = zeros.get(mod, 0) + (x == 0).double().sum(dims)
        counts[mod] = counts.get(mod, 0) + x.numel() // x.shape[1]

    device = model_device(model)
    model.eval()
    hooks = [m.register_forward_hook(record) for m in modules]
    try:
        with torch.no_grad():
            for x, *_ in batches:
                model(x.to(device))
    finally:
        for h in hooks:
            h.remove()
    return {m: (zeros[m] / counts[m]).cpu() for m in zeros}


def apoz_score(name: str, reads: list, fractions: dict[nn.Module, torch.Tensor], width: int) -> torch.Tensor:
    """1 − APoZ of each channel (higher = more important), averaged over the layers that read the group."""
    total = torch.zeros(width, dtype=torch.float64)
    count = torch.zeros(width, dtype=torch.float64)
    for layer, idxs, root_idxs in reads:
        root = torch.tensor(root_idxs)
        total.scatter_add_(0, root, fractions[layer][idxs].double())
        count.scatter_add_(0, root, torch.ones(len(idxs), dtype=torch.float64))
    if not reads or not bool((count > 0).all()):
        raise ValueError(f"channel group {name}: no conv/linear layer reads all its channels, so APoZ is undefined")
    return 1.0 - total / count
