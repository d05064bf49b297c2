"""NetAdapt (Yang et al., ECCV'18): greedily shrink the one group that keeps accuracy best, step by step."""
from __future__ import annotations

import copy
from collections.abc import Callable

import torch.nn as nn

from edgeprune.costmodel.macs import network_macs
from edgeprune.data import DataBundle
from edgeprune.errors import EdgepruneError
from edgeprune.models.layer_space import LayerSpace
from edgeprune.prune.budget import check_reachable
from edgeprune.prune.importance import DEFAULT_BATCHES, channel_importance, check_criterion, keep_top
from edgeprune.structure.physical import allowed_widths, apply_kept, keep_floor
from edgeprune.prune.result import CostFn, PruneResult
from edgeprune.prune.short_tune import holdout_accuracy, short_tune, take_batches


class NetAdaptIncomplete(EdgepruneError):
    """NetAdapt stopped before meeting the budget; ``result`` and ``model`` hold the progress so far."""

    def __init__(self, message: str, result: PruneResult, model: nn.Module):
        super().__init__(message)
        self.result, self.model = result, model


def propose_widths(space: LayerSpace, widths: dict[str, int], cost_fn: CostFn, target: float,
                   round_to: int | None = None, min_keep: float = 0.0) -> dict[str, tuple[int, float]]:
    """Per group: the largest narrower width meeting ``target`` when only that group shrinks, with its cost."""
    proposals = {}
    for group in space.prunable_groups:
        name, current = group.name, widths[group.name]
        floor = keep_floor(group.width, min_keep)
        grid = [w for w in allowed_widths(group.width, round_to, group.divisor) if floor <= w < current]
        if not grid or cost_fn({**widths, name: grid[0]}) > target:
            continue  # already at its minimum, or even its minimum cannot reach the target alone
        for w in reversed(grid):  # one channel (or one multiple) at a time, widest first
            cost = float(cost_fn({**widths, name: w}))
            if cost <= target:
                proposals[name] = (w, cost)
                break
    return proposals


def netadapt_search(model: nn.Module, space: LayerSpace, cost_fn: CostFn, budget_abs: float, data: DataBundle,
                    step_fraction: float = 0.05, decay: float = 0.96, short_tune_steps: int = 50,
                    round_to: int | None = None, max_iters: int = 100,
                    progress: Callable[[dict], None] | None = None, *, criterion: str = "l1",
                    eval_batches: int = 4, lr: float = 0.01,
                    criterion_batches: int = DEFAULT_BATCHES,
                    start: tuple[PruneResult, nn.Module] | None = None,
                    min_keep: float = 0.0) -> tuple[PruneResult, nn.Module]:
    """NetAdapt, ranking the current model's channels by ``criterion`` each step; returns the result and the pruned,
    short-tuned model it ends with (``model`` is not changed). ``start``: an earlier search's (result, model) to go on
    from towards a lower budget. ``min_keep``: no group goes below this share of its dense width (greedy steps
    judged on a few batches otherwise cut a residual stream to a channel or two, which the network never recovers
    from)."""
    check_criterion(criterion, data)
    if not 0 < step_fraction < 1 or not 0 < decay <= 1 or short_tune_steps < 0 or max_iters < 1:
        raise ValueError("need 0 < step_fraction < 1, 0 < decay <= 1, short_tune_steps >= 0 and max_iters >= 1")
    if not 0 <= min_keep < 1:
        raise ValueError(f"min_keep must be in [0, 1), got {min_keep}")
    dense_cost, floor_cost = check_reachable(cost_fn, space, budget_abs, round_to, min_keep=min_keep)
    holdout = take_batches(data.val, eval_batches)
    loss_fn, eval_fn = getattr(data, "loss_fn", None), getattr(data, "eval_fn", None)
    if start is None:
        widths = space.dense_widths()
        kept = {g: list(range(w)) for g, w in widths.items()}
        current, cost = copy.deepcopy(model).eval(), dense_cost
        history = [{"iter": 0, "cost": cost, "accuracy": holdout_accuracy(current, holdout, eval_fn),
                    "macs": network_macs(space, widths), "floor_cost": floor_cost}]
    else:
        widths, kept = dict(start[0].widths), {g: list(k) for g, k in start[0].kept.items()}
        current, cost, history = copy.deepcopy(start[1]).eval(), start[0].predicted_cost, list(start[0].history)
    stuck = f"raise max_iters ({max_iters}) or step_fraction ({step_fraction})"
    for it in range(len(history) - 1, max_iters):
        if cost <= budget_abs:
            break
        reduction = step_fraction * decay ** it * cost
        target = max(cost - reduction, budget_abs)
        proposals = propose_widths(space, widths, cost_fn, target, round_to, min_keep)
        while not proposals and reduction > 1e-6 * cost:  # no single group can take the whole step: a smaller one
            reduction /= 2
            target = max(cost - reduction, budget_abs)
            proposals = propose_widths(space, widths, cost_fn, target, round_to, min_keep)
        if not proposals:
            stuck = "no single group can lower the predicted cost any further"
            break
        importance = channel_importance(current, space, criterion, data, criterion_batches)
        tune = take_batches(data.train, short_tune_steps) if short_tune_steps else []
        best = None
        scores = {}
        for name, (width, new_cost) in proposals.items():
            local = keep_top({name: importance[name]}, {name: width}, space.divisors())[name]
            candidate = apply_kept(current, space, {name: local})
            short_tune(candidate, tune, lr, loss_fn=loss_fn)
            acc = holdout_accuracy(candidate, holdout, eval_fn)
            scores[name] = acc
            if best is None or (acc, -new_cost) > (best[0], -best[2]):
                best = (acc, name, new_cost, width, local, candidate)
        acc, name, cost, width, local, current = best
        kept[name] = [kept[name][i] for i in local]
        widths[name] = width
        record = {"iter": it + 1, "group": name, "width": width, "cost": cost, "target": target,
                  "accuracy": acc, "proposals": scores, "macs": network_macs(space, widths)}
        history.append(record)
        if progress is not None:
            progress(dict(record))
    result = PruneResult("netadapt", dict(widths), {g: list(k) for g, k in kept.items()}, cost, history)
    if cost > budget_abs:
        raise NetAdaptIncomplete(
            f"netadapt stopped after {len(history) - 1} step(s) at predicted cost {cost:.4g} > budget {budget_abs:.4g} "
            f"(floor {floor_cost:.4g}): {stuck}",
            result, current)
    return result, current


def prune_netadapt(model: nn.Module, space: LayerSpace, cost_fn: CostFn, budget_abs: float, data: DataBundle,
                   step_fraction: float = 0.05, decay: float = 0.96, short_tune_steps: int = 50,
                   round_to: int | None = None, max_iters: int = 100,
                   progress: Callable[[dict], None] | None = None, **kwargs) -> PruneResult:
    """NetAdapt to ``budget_abs``; kept indices refer to the original dense channels (see ``netadapt_search``)."""
    return netadapt_search(model, space, cost_fn, budget_abs, data, step_fraction, decay, short_tune_steps,
                           round_to, max_iters, progress, **kwargs)[0]
