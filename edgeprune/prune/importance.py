"""Per-channel importance of every prunable group, scored over the coupled torch-pruning group."""
from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn as nn
import torch_pruning as tp

from edgeprune.models.layer_space import LayerSpace
from edgeprune.prune.criteria import (WEIGHTED, accumulate_gradients, apoz_score, consumers, taylor_filter,
                                      zero_fractions)
from edgeprune.structure.graph import build_graph, current_width, group_root, out_group
from edgeprune.prune.short_tune import take_batches

MAGNITUDE = {"l1": 1, "l2": 2}
DATA_DRIVEN = ("taylor", "apoz")
CRITERIA = ("l1", "l2", "bn", "fpgm", "taylor", "apoz")
DEFAULT_BATCHES = 8


def check_criterion(criterion: str, data=None) -> None:
    """ValueError for an unknown criterion, or for a data-driven one without data."""
    if criterion not in CRITERIA:
        raise ValueError(f"unknown importance criterion {criterion!r}; choose one of {', '.join(CRITERIA)}")
    if criterion in DATA_DRIVEN and data is None:
        raise ValueError(f"importance criterion {criterion!r} needs training data (a few batches of data.train); "
                         "pass data=, or use l1, l2, bn or fpgm")


def _scorer(criterion: str) -> tp.importance.Importance:
    """torch-pruning's scorer for ``criterion``: summed over the group's members, not normalised."""
    if criterion in MAGNITUDE:
        return tp.importance.GroupMagnitudeImportance(p=MAGNITUDE[criterion], group_reduction="sum", normalizer=None)
    if criterion == "bn":
        return tp.importance.BNScaleImportance(group_reduction="sum", normalizer=None)
    if criterion == "fpgm":
        return tp.importance.FPGMImportance(p=1, group_reduction="sum", normalizer=None)  # distances of |w|
    return tp.importance.GroupTaylorImportance(group_reduction="sum", normalizer=None, target_types=list(WEIGHTED))


def _depthwise_term(dg: tp.DependencyGraph, group, criterion: str, width: int) -> torch.Tensor:
    """Depthwise convs' own filters, which torch-pruning 1.6's magnitude and Taylor scorers skip."""
    extra = torch.zeros(width, dtype=torch.float32)
    if criterion not in MAGNITUDE and criterion != "taylor":
        return extra
    for i, (dep, idxs) in enumerate(group):
        layer = dep.layer
        if (isinstance(layer, nn.Conv2d) and layer.groups > 1 and layer.groups == layer.out_channels
                and dg.is_out_channel_pruning_fn(dep.pruning_fn)):
            if criterion == "taylor":
                local = taylor_filter(layer, idxs)
            else:
                local = layer.weight.detach()[idxs].flatten(1).abs().pow(MAGNITUDE[criterion]).sum(1)
            extra.scatter_add_(0, torch.tensor(group[i].root_idxs), local.float().cpu())
    return extra


def channel_importance(model: nn.Module, space: LayerSpace, criterion: str = "l1", data=None,
                       batches: int = DEFAULT_BATCHES) -> dict[str, np.ndarray]:
    """Importance of each channel of each prunable group (length = the group's current width in ``model``).

    Higher is more important. Every score covers the coupled group (producing filters, consuming input slices,
    BN scales, depthwise filters) as each criterion defines it: ``l1``/``l2`` weight magnitude (L1, squared L2);
    ``bn`` BN scale |γ| (network slimming); ``fpgm`` summed Euclidean distance of each |w| filter to the others
    (geometric median); ``taylor`` |w · ∂L/∂w| of conv/linear weights, gradients summed over ``batches`` batches of
    ``data.train``; ``apoz`` 1 − the share of zeros in what the group's consumers read (post-activation) over
    those batches. Data-driven criteria work on a copy, so ``model`` (weights, grads, BN statistics) is untouched.
    """
    check_criterion(criterion, data)
    sample = None
    if criterion in DATA_DRIVEN:
        model = copy.deepcopy(model)
        sample = take_batches(data.train, batches)
        if criterion == "taylor":
            accumulate_gradients(model, sample, getattr(data, "loss_fn", None))
    dg = build_graph(model, space.input_shape)
    groups = {}
    for g in space.prunable_groups:
        root = group_root(model, g.name)
        width = current_width(dg, root)
        groups[g.name] = (out_group(dg, root, list(range(width))), width)
    if criterion == "apoz":
        reads = {name: consumers(dg, group) for name, (group, _) in groups.items()}
        fractions = zero_fractions(model, {r[0] for rs in reads.values() for r in rs}, sample)
        return {name: apoz_score(name, reads[name], fractions, width).numpy()
                for name, (_, width) in groups.items()}
    scorer = _scorer(criterion)
    scores: dict[str, np.ndarray] = {}
    for name, (group, width) in groups.items():
        base = scorer(group)
        if base is None:
            raise ValueError(f"channel group {name} has no layer that criterion {criterion!r} can score")
        total = base.float().cpu() + _depthwise_term(dg, group, criterion, width)
        scores[name] = total.numpy().astype(np.float64)
    return scores


def keep_top(importance: dict[str, np.ndarray], widths: dict[str, int],
             divisors: dict[str, int] | None = None) -> dict[str, list[int]]:
    """Sorted indices of the ``widths[g]`` most important channels of each group (missing widths: keep all).

    A group chunked by a grouped conv (``divisors``) keeps the same positions in every chunk: the positions whose
    importance summed over the chunks is highest.
    """
    kept = {}
    for name, imp in importance.items():
        k = int(widths.get(name, len(imp)))
        if not 1 <= k <= len(imp):
            raise ValueError(f"group {name}: cannot keep {k} of {len(imp)} channels")
        d = (divisors or {}).get(name, 1)
        if k % d:
            raise ValueError(f"group {name}: {k} channels do not split into its {d} conv groups")
        chunk = len(imp) // d
        local = np.asarray(imp, dtype=float).reshape(d, chunk).sum(0)
        order = np.argsort(-local, kind="stable")[: k // d]
        kept[name] = sorted(int(c * chunk + i) for c in range(d) for i in order)
    unknown = sorted(set(widths) - set(importance))
    if unknown:
        raise ValueError(f"widths name groups without importance scores: {unknown}")
    return kept
