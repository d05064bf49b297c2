"""HALP: latency-saliency knapsack pruning (after Shen et al., "Structural Pruning via Latency-Saliency Knapsack",
NeurIPS'22) — keep the channels whose Taylor importance is worth their measured-model cost, step by step."""
from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch.nn as nn

from edgeprune.models.layer_space import LayerSpace
from edgeprune.progress import SILENT, Progress
from edgeprune.prune.budget import check_reachable
from edgeprune.prune.importance import channel_importance, keep_top
from edgeprune.structure.physical import allowed_widths, apply_kept, keep_floor
from edgeprune.prune.result import PruneResult
from edgeprune.prune.short_tune import short_tune, take_batches
from edgeprune.train.batchnorm import recalibrate_bn

# Predicted network cost of several width assignments at once (a fitted cost model's ``predict``).
CostBatch = Callable[[Sequence[dict[str, int]]], np.ndarray]

_BINS = 2000  # resolution of the knapsack's cost axis
MIN_TUNE_STEPS = 20
_FIT_TRIES = 6  # bisection steps towards the least saving whose real predicted cost meets the target


@dataclass
class HalpSettings:
    """``steps`` pruning steps from dense to the budget, with SGD steps after every step but the last: ``epochs``
    passes over the training data in all (at least ``MIN_TUNE_STEPS``), or ``tune_steps`` after each if given."""

    steps: int = field(default=4, metadata={
        "option": "--halp-steps", "help": "Knapsack pruning steps, short-tuned in between."})
    epochs: float = 0.5
    tune_steps: int | None = None
    lr: float = 0.01
    min_keep: float = field(default=0.2, metadata={  # as ecc: no group below this share of its dense width
        "option": "--min-keep", "help": "Keep at least this share of every channel group."})
    criterion_batches: int = 8
    round_to: int | None = None

    def __post_init__(self):
        if self.steps < 1 or (self.tune_steps or 0) < 0 or not self.epochs >= 0 or not 0 <= self.min_keep < 1:
            raise ValueError(f"halp needs steps >= 1, tune_steps >= 0, epochs >= 0 and 0 <= min_keep < 1, got {self}")

    def steps_between(self, steps_per_epoch: int) -> int:
        """SGD steps after each pruning step but the last, for a loader of ``steps_per_epoch`` batches."""
        if self.tune_steps is not None:
            return self.tune_steps
        gaps = max(1, self.steps - 1)
        return max(MIN_TUNE_STEPS, round(self.epochs * steps_per_epoch)) // gaps


def knapsack(values: list[np.ndarray], savings: list[np.ndarray], need: float) -> list[int]:
    """Multiple-choice knapsack: one option per group, minimising the value given up while the options' savings
    add up to at least ``need``. ``values[g][k]``: value lost by option k; ``savings[g][k]``: cost it saves (≥ 0).
    Returns each group's option index (the largest reachable saving when none covers ``need``)."""
    scale = _BINS / need if need > 0 else 0.0
    levels = np.arange(_BINS + 1)
    best = np.full(_BINS + 1, np.inf)
    best[0] = 0.0
    back = []  # per group: (option, previous level) for every level reached
    for val, sav in zip(values, savings):
        units = np.minimum(_BINS, np.floor(np.maximum(sav, 0.0) * scale + 1e-9)).astype(int)
        nxt = np.full(_BINS + 1, np.inf)
        option = np.zeros(_BINS + 1, dtype=int)
        prev = np.zeros(_BINS + 1, dtype=int)
        for k, (v, u) in enumerate(zip(val, units)):
            new_level = np.minimum(levels + u, _BINS)
            total = best + v
            # several old levels land on the top level: keep the best of them (np.minimum.at keeps the order)
            order = np.argsort(total, kind="stable")[::-1]
            cand = np.full(_BINS + 1, np.inf)
            src = np.zeros(_BINS + 1, dtype=int)
            cand[new_level[order]], src[new_level[order]] = total[order], levels[order]
            better = cand < nxt
            nxt[better], option[better], prev[better] = cand[better], k, src[better]
        best = nxt
        back.append((option, prev))
    level = int(np.max(np.nonzero(np.isfinite(best))[0]))
    picks = []
    for option, prev in reversed(back):
        picks.append(int(option[level]))
        level = int(prev[level])
    return picks[::-1]


def _options(space: LayerSpace, widths: dict[str, int], s: HalpSettings) -> dict[str, list[int]]:
    """Each group's candidate widths: the allowed grid between its floor and its current width."""
    out = {}
    for g in space.prunable_groups:
        floor = keep_floor(g.width, s.min_keep)
        grid = [w for w in allowed_widths(g.width, s.round_to, g.divisor) if floor <= w <= widths[g.name]]
        out[g.name] = grid or [widths[g.name]]
    return out


def select_widths(importance: dict[str, np.ndarray], widths: dict[str, int], options: dict[str, list[int]],
                  cost_batch: CostBatch, target: float) -> tuple[dict[str, int], float]:
    """The widths that keep the most importance with predicted cost ≤ ``target`` (when reachable), each channel
    priced by its marginal cost at the current ``widths``; returns (widths, predicted cost)."""
    groups = list(options)
    trials = [{**widths, g: w} for g in groups for w in options[g]]
    costs = cost_batch([widths] + trials)
    base, costs = float(costs[0]), costs[1:]
    values, savings, at = [], [], 0
    for g in groups:
        ranked = np.sort(np.asarray(importance[g], dtype=float))[::-1]
        kept_value = np.concatenate([[0.0], np.cumsum(ranked)])
        values.append(np.array([kept_value[widths[g]] - kept_value[w] for w in options[g]]))
        savings.append(np.array([base - c for c in costs[at:at + len(options[g])]]))
        at += len(options[g])

    def pick(asked: float) -> tuple[dict[str, int], float]:
        chosen = {g: options[g][k] for g, k in zip(groups, knapsack(values, savings, asked))}
        return chosen, float(cost_batch([chosen])[0])

    # The cost is not separable across groups (a conv costs c_in × c_out): ask for more saving until the cost
    # model's own prediction meets the target, then bisect back towards the least saving that still does.
    most = sum(float(np.max(sv)) for sv in savings)
    asked, failed = max(base - target, 0.0), None
    chosen, cost = pick(asked)
    while cost > target and asked < most:
        failed, asked = asked, min(most, asked * 1.25 + 1e-9 * base)
        chosen, cost = pick(asked)
    if cost > target:
        floor = {g: options[g][0] for g in groups}
        return floor, float(cost_batch([floor])[0])
    for _ in range(_FIT_TRIES if failed is not None else 0):
        mid = (failed + asked) / 2
        trial = pick(mid)
        if trial[1] <= target:
            asked, (chosen, cost) = mid, trial
        else:
            failed = mid
    return chosen, cost


def prune_halp(model: nn.Module, space: LayerSpace, cost_batch: CostBatch, budget_abs: float, data,
               settings: HalpSettings = HalpSettings(), progress: Callable[[dict], None] | None = None,
               start: tuple[PruneResult, nn.Module] | None = None,
               reporter: Progress = SILENT) -> tuple[PruneResult, nn.Module]:
    """HALP to ``budget_abs`` in ``settings.steps`` knapsack steps (from ``start``'s pruned model if given),
    re-ranking channels by Taylor importance and short-tuning between steps; ``model`` is not changed. Returns the
    result (kept indices are dense-model channels) and the pruned model."""
    cost_fn = lambda w: float(cost_batch([w])[0])  # noqa: E731
    check_reachable(cost_fn, space, budget_abs, settings.round_to, min_keep=settings.min_keep)
    if start is None:
        widths = space.dense_widths()
        kept = {g: list(range(w)) for g, w in widths.items()}
        current, history = copy.deepcopy(model), []
    else:
        widths, kept = dict(start[0].widths), {g: list(k) for g, k in start[0].kept.items()}
        current, history = copy.deepcopy(start[1]), list(start[0].history)
    first = cost_fn(widths)
    cost = first
    tune_steps = settings.steps_between(len(data.train))
    reporter.start("HALP", settings.steps + (settings.steps - 1) * tune_steps)
    for step in range(1, settings.steps + 1):
        target = first - (first - budget_abs) * step / settings.steps
        importance = channel_importance(current, space, "taylor", data, settings.criterion_batches)
        chosen, cost = select_widths(importance, widths, _options(space, widths, settings), cost_batch, target)
        shrink = {g: w for g, w in chosen.items() if w < widths[g]}
        if shrink:
            local = keep_top({g: importance[g] for g in shrink}, shrink, space.divisors())
            current = apply_kept(current, space, local)
            kept.update({g: [kept[g][i] for i in idx] for g, idx in local.items()})
            widths.update(shrink)
            recalibrate_bn(current, data.train)
        reporter.advance()
        if step < settings.steps and tune_steps:
            short_tune(current, take_batches(data.train, tune_steps), settings.lr,
                       loss_fn=getattr(data, "loss_fn", None))
            reporter.advance(tune_steps)
        record = {"step": len(history) + 1, "target": target, "predicted_cost": cost, "widths": dict(widths)}
        history.append(record)
        if progress is not None:
            progress(dict(record))
    reporter.finish()
    current.eval()
    return PruneResult("halp", dict(widths), kept, cost, history), current
