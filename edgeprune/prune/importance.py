"""Per-channel importance of every prunable group: magnitude summed over all coupled layers."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch_pruning as tp

from edgeprune.models.layer_space import LayerSpace
from edgeprune.prune.graph import build_graph, current_width, group_root, out_group

CRITERIA = {"l1": 1, "l2": 2}


def _depthwise_term(dg: tp.DependencyGraph, group, p: int, width: int) -> torch.Tensor:
    """Magnitude of depthwise convs' own filters, which torch-pruning 1.6's magnitude scorer skips."""
    extra = torch.zeros(width, dtype=torch.float32)
    for i, (dep, idxs) in enumerate(group):
        layer = dep.layer
        if (isinstance(layer, nn.Conv2d) and layer.groups > 1 and layer.groups == layer.out_channels
                and dg.is_out_channel_pruning_fn(dep.pruning_fn)):
            local = layer.weight.detach()[idxs].flatten(1).abs().pow(p).sum(1).float().cpu()
            extra.scatter_add_(0, torch.tensor(group[i].root_idxs), local)
    return extra


def channel_importance(model: nn.Module, space: LayerSpace, criterion: str = "l1") -> dict[str, np.ndarray]:
    """Importance of each channel of each prunable group (length = the group's current width in ``model``).

    A channel's score is the L1 (or squared L2) norm of every weight that removing it deletes, summed over the
    coupled group: producing conv/linear filters, consuming input slices, BN scales and depthwise filters.
    """
    if criterion not in CRITERIA:
        raise ValueError(f"unknown importance criterion {criterion!r}; choose one of {sorted(CRITERIA)}")
    p = CRITERIA[criterion]
    scorer = tp.importance.GroupMagnitudeImportance(p=p, group_reduction="sum", normalizer=None)
    dg = build_graph(model, space.input_shape)
    scores: dict[str, np.ndarray] = {}
    for g in space.prunable_groups:
        root = group_root(model, g.name)
        width = current_width(dg, root)
        group = out_group(dg, root, list(range(width)))
        base = scorer(group)
        if base is None:
            raise ValueError(f"channel group {g.name} has no weighted layer to score")
        total = base.float().cpu() + _depthwise_term(dg, group, p, width)
        scores[g.name] = total.numpy().astype(np.float64)
    return scores


def keep_top(importance: dict[str, np.ndarray], widths: dict[str, int]) -> dict[str, list[int]]:
    """Sorted indices of the ``widths[g]`` most important channels of each group (missing widths: keep all)."""
    kept = {}
    for name, imp in importance.items():
        k = int(widths.get(name, len(imp)))
        if not 1 <= k <= len(imp):
            raise ValueError(f"group {name}: cannot keep {k} of {len(imp)} channels")
        order = np.argsort(-np.asarray(imp), kind="stable")
        kept[name] = sorted(int(i) for i in order[:k])
    unknown = sorted(set(widths) - set(importance))
    if unknown:
        raise ValueError(f"widths name groups without importance scores: {unknown}")
    return kept
