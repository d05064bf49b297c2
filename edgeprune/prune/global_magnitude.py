"""Global baseline: drop the weakest channels network-wide (any criterion) until the predicted cost meets the budget."""
from __future__ import annotations

import numpy as np
import torch.nn as nn

from edgeprune.costmodel.macs import network_macs
from edgeprune.models.layer_space import LayerSpace
from edgeprune.prune.budget import check_reachable
from edgeprune.prune.importance import DEFAULT_BATCHES, channel_importance, keep_top
from edgeprune.structure.physical import keep_floor, round_widths
from edgeprune.prune.result import CostFn, PruneResult


def normalised_scores(importance: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Each group's scores divided by its mean, so groups of different weight scale compare."""
    out = {}
    for name, imp in importance.items():
        mean = float(np.mean(imp))
        out[name] = imp / mean if mean > 0 else np.ones_like(imp)
    return out


def global_order(scores: dict[str, np.ndarray]) -> tuple[list[str], np.ndarray]:
    """(group names, group index of every channel in ascending global score order)."""
    names = sorted(scores)
    values = np.concatenate([scores[n] for n in names])
    owner = np.concatenate([np.full(len(scores[n]), i) for i, n in enumerate(names)])
    return names, owner[np.argsort(values, kind="stable")]


def prune_global(model: nn.Module, space: LayerSpace, cost_fn: CostFn, budget_abs: float,
                 round_to: int | None = None, criterion: str = "l1", data=None,
                 criterion_batches: int = DEFAULT_BATCHES, min_keep: float = 0.0) -> PruneResult:
    """Remove the globally weakest channels by ``criterion`` (scores divided by their group's mean), no group below
    ``min_keep`` of its channels; how many is bisected so the predicted cost is ≤ ``budget_abs``. ``data`` feeds the
    data-driven criteria."""
    dense = space.dense_widths()
    dense_cost, floor_cost = check_reachable(cost_fn, space, budget_abs, round_to, min_keep=min_keep)
    importance = channel_importance(model, space, criterion, data, criterion_batches)
    names, owner = global_order(normalised_scores(importance))
    dense_arr = np.array([dense[n] for n in names])
    floor_arr = np.array([keep_floor(dense[n], min_keep) for n in names])
    history = []

    def widths_at(n_removed: int) -> dict[str, int]:
        removed = np.bincount(owner[:n_removed], minlength=len(names))
        raw = {n: int(max(f, w - r)) for n, w, f, r in zip(names, dense_arr, floor_arr, removed)}
        return round_widths(raw, round_to, dense, space.divisors())

    def feasible(n_removed: int) -> bool:
        widths = widths_at(n_removed)
        cost = float(cost_fn(widths))
        history.append({"removed": n_removed, "cost": cost, "macs": network_macs(space, widths),
                        "feasible": cost <= budget_abs})
        return cost <= budget_abs

    lo, hi = 0, len(owner)  # smallest feasible count lies in (lo, hi]; hi (everything at minimum) is feasible
    if feasible(0):
        hi = 0
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if feasible(mid):
            hi = mid
        else:
            lo = mid
    widths = widths_at(hi)
    cost = float(cost_fn(widths))
    history.append({"step": "result", "removed": hi, "cost": cost, "dense_cost": dense_cost,
                    "floor_cost": floor_cost, "macs": network_macs(space, widths), "dense_macs": network_macs(space)})
    return PruneResult("global", widths, keep_top(importance, widths, space.divisors()), cost, history)
