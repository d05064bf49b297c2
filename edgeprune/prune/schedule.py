"""Pruning schedules to a method's final widths: one-shot, iterative prune–fine-tune and gradual AGP."""
from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch.nn as nn

from edgeprune.models.layer_space import LayerSpace
from edgeprune.structure.graph import prunable_names
from edgeprune.prune.importance import DEFAULT_BATCHES, channel_importance, check_criterion, keep_top
from edgeprune.structure.physical import apply_kept
from edgeprune.train import fine_tune, recalibrate_bn

SCHEDULES = ("oneshot", "iterative", "agp")


@dataclass
class ScheduleResult:
    """The pruned, fine-tuned model, the channels it keeps as dense-model indices, and one record per step."""

    model: nn.Module
    kept: dict[str, list[int]]
    history: list[dict]


def check_schedule(schedule: str, steps: int) -> None:
    """ValueError for an unknown schedule or a step count below 1."""
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown pruning schedule {schedule!r}; choose one of {', '.join(SCHEDULES)}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"schedule steps must be a positive integer, got {steps!r}")


def agp_sparsity(t: int, n: int, s_i: float, s_f: float) -> float:
    """Zhu & Gupta (2017) cubic ramp at step ``t`` of ``n``: s_t = s_f + (s_i − s_f)(1 − t/n)³."""
    if not 0 <= t <= n:
        raise ValueError(f"AGP step {t} outside 0..{n}")
    return s_f + (s_i - s_f) * (1 - t / n) ** 3


def schedule_widths(dense: dict[str, int], final: dict[str, int], schedule: str,
                    steps: int, divisors: dict[str, int] | None = None) -> list[dict[str, int]]:
    """Each group's width after every step (one step for oneshot); the last entry is ``final``.

    Step t of n removes the share t/n (iterative) or the AGP sparsity with s_i = 0, s_f = 1 (agp) of the group's
    width reduction dense − final.
    """
    check_schedule(schedule, steps)
    bad = {g: (w, dense.get(g)) for g, w in final.items() if g not in dense or not 1 <= w <= dense[g]}
    if bad:
        raise ValueError(f"final widths must lie in 1..dense for known groups; got (final, dense) {bad}")
    n = 1 if schedule == "oneshot" else steps
    plan = []
    for t in range(1, n + 1):
        done = agp_sparsity(t, n, 0.0, 1.0) if schedule == "agp" else t / n
        step = {g: w + round((dense[g] - w) * (1 - done)) for g, w in final.items()}
        # a group chunked by a grouped conv moves in whole multiples of its chunk count (rounded towards dense)
        plan.append({g: w if w == final[g] else min(dense[g], -(-w // d) * d)
                     for g, w in step.items() for d in [(divisors or {}).get(g, 1)]})
    return plan


def split_epochs(total: int, steps: int) -> list[int]:
    """``total`` epochs over ``steps`` steps (sum ``total``); the remainder goes to the last steps."""
    base, extra = divmod(total, steps)
    return [base + (i >= steps - extra) for i in range(steps)]


def prune_on_schedule(model: nn.Module, space: LayerSpace, widths: dict[str, int], data, schedule: str = "iterative",
                      steps: int = 3, epochs: int = 3, *, criterion: str = "l1", batches: int = DEFAULT_BATCHES,
                      checkpoint_dir: str | Path | None = None, progress: Callable[[dict], None] | None = None,
                      **tune) -> ScheduleResult:
    """Prune a copy of the dense ``model`` to ``widths`` step by step, re-ranking the current model's channels by
    ``criterion`` before each step and fine-tuning after it (``fine_tune`` with ``tune``; ``epochs`` in all)."""
    check_criterion(criterion, data)
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 0:
        raise ValueError(f"epochs must be an integer >= 0, got {epochs!r}")
    if epochs and data is None:
        raise ValueError(f"{epochs} fine-tuning epoch(s) need data to fine-tune on; pass data, or epochs=0")
    prunable_names(space, widths)
    dense = space.dense_widths()
    plan = schedule_widths(dense, {**dense, **widths}, schedule, steps, space.divisors())
    current = copy.deepcopy(model)
    kept = {g: list(range(w)) for g, w in dense.items()}
    history = []
    for t, (target, n_epochs) in enumerate(zip(plan, split_epochs(epochs, len(plan))), 1):
        shrink = {g: w for g, w in target.items() if w < len(kept[g])}
        if shrink:
            scores = channel_importance(current, space, criterion, data, batches)
            local = keep_top({g: scores[g] for g in shrink}, shrink, space.divisors())
            current = apply_kept(current, space, local)
            if data is not None:
                recalibrate_bn(current, data.train)
            kept.update({g: [kept[g][i] for i in idxs] for g, idxs in local.items()})
        record = {"step": t, "widths": {g: len(k) for g, k in kept.items()}, "epochs": n_epochs, "accuracy": None}
        if n_epochs:
            ckpt = None if checkpoint_dir is None else Path(checkpoint_dir) / f"step{t}"
            record["accuracy"] = fine_tune(current, data, n_epochs, checkpoint_dir=ckpt, **tune).final["accuracy"]
        history.append(record)
        if progress is not None:
            progress(dict(record))
    return ScheduleResult(current, kept, history)
