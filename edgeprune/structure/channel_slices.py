"""Which parameter slices hold each channel of each prunable group (from torch-pruning's dependency graph)."""
from __future__ import annotations

import torch
import torch.nn as nn

from edgeprune.models.layer_space import LayerSpace
from edgeprune.structure.graph import build_graph

Slice = tuple[nn.Parameter, int]  # (parameter, dimension indexed by the group's channels)


def group_slices(model: nn.Module, space: LayerSpace) -> dict[str, list[Slice]]:
    """For every prunable group, the (parameter, dim) pairs whose index along dim is the group's channel."""
    modules = dict(model.named_modules())
    dg = build_graph(model, space.input_shape)
    out: dict[str, list[Slice]] = {}
    for g in space.prunable_groups:
        root = modules[g.name.rsplit(":", 1)[0]]
        group = dg.get_pruning_group(root, dg.get_pruner_of_module(root).prune_out_channels,
                                     idxs=list(range(g.width)))
        slices: list[Slice] = []
        for item in group:
            if list(item.idxs) != list(item.root_idxs):
                continue  # a concat offset or a shuffle: this member's channel j is not the group's channel j
            dep = item.dep
            mod = dep.target.module
            is_out = dg.is_out_channel_pruning_fn(dep.handler)
            depthwise = isinstance(mod, nn.Conv2d) and mod.groups > 1
            if isinstance(mod, (nn.Conv2d, nn.Linear)):
                dim = 0 if (is_out or depthwise) else 1
                slices.append((mod.weight, dim))
                if mod.bias is not None and dim == 0:
                    slices.append((mod.bias, 0))
            elif isinstance(mod, nn.modules.batchnorm._BatchNorm) and mod.affine:
                slices += [(mod.weight, 0), (mod.bias, 0)]
        # Only slices whose size equals the group width map channel j to index j.
        unique = {(id(p), d): (p, d) for p, d in slices if p.shape[d] == g.width}
        out[g.name] = list(unique.values())
    return out


def channel_norms(slices: list[Slice], tensors: dict[int, torch.Tensor] | None = None) -> torch.Tensor:
    """Squared L2 norm of each channel over all its slices (optionally of other tensors shaped like the params)."""
    total = None
    for p, dim in slices:
        t = (tensors or {}).get(id(p), p).detach()
        sq = t.pow(2).transpose(0, dim).reshape(t.shape[dim], -1).sum(dim=1)
        total = sq if total is None else total + sq
    return total
