"""Uniform baseline: one keep-ratio for every prunable group, bisected to the cost budget; channels by criterion."""
from __future__ import annotations

import math

import torch.nn as nn

from edgeprune.costmodel.macs import network_macs
from edgeprune.models.layer_space import LayerSpace
from edgeprune.prune.budget import check_reachable
from edgeprune.prune.importance import DEFAULT_BATCHES, channel_importance, check_criterion, keep_top
from edgeprune.structure.physical import round_widths
from edgeprune.prune.result import CostFn, PruneResult


def uniform_widths(dense: dict[str, int], ratio: float, round_to: int | None = None,
                   divisors: dict[str, int] | None = None) -> dict[str, int]:
    """Every group at ceil(ratio · dense) channels (at least 1), rounded to ``round_to`` / grouped-conv multiples."""
    raw = {g: min(w, max(1, math.ceil(ratio * w - 1e-9))) for g, w in dense.items()}
    return round_widths(raw, round_to, dense, divisors)


def prune_uniform(model: nn.Module, space: LayerSpace, cost_fn: CostFn, budget_abs: float,
                  round_to: int | None = None, criterion: str = "l1", iters: int = 40, data=None,
                  criterion_batches: int = DEFAULT_BATCHES) -> PruneResult:
    """The largest common keep-ratio whose predicted cost is ≤ ``budget_abs``; channels ranked by ``criterion``
    (``data`` and ``criterion_batches`` feed the data-driven ones, see ``channel_importance``)."""
    check_criterion(criterion, data)
    dense = space.dense_widths()
    dense_cost, floor_cost = check_reachable(cost_fn, space, budget_abs, round_to)
    history = []

    def cost_at(ratio: float) -> float:
        cost = float(cost_fn(uniform_widths(dense, ratio, round_to, space.divisors())))
        history.append({"ratio": ratio, "cost": cost, "feasible": cost <= budget_abs})
        return cost

    lo, hi = 0.0, 1.0  # invariant: cost_at(lo) <= budget (lo = 0 is the floor); cost_at(hi) > budget
    if cost_at(1.0) <= budget_abs:
        lo = 1.0
    else:
        for _ in range(iters):
            mid = 0.5 * (lo + hi)
            if cost_at(mid) <= budget_abs:
                lo = mid
            else:
                hi = mid
    widths = uniform_widths(dense, lo, round_to, space.divisors())
    cost = float(cost_fn(widths))
    history.append({"step": "result", "ratio": lo, "cost": cost, "dense_cost": dense_cost, "floor_cost": floor_cost,
                    "macs": network_macs(space, widths), "dense_macs": network_macs(space)})
    kept = keep_top(channel_importance(model, space, criterion, data, criterion_batches), widths, space.divisors())
    return PruneResult("uniform", widths, kept, cost, history)
