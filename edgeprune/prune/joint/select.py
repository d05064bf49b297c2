"""Choose how many of the ranked blocks to remove and how far to scale the γ thresholds to meet the budget."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from edgeprune.models.layer_space import LayerSpace
from edgeprune.prune.budget import InfeasibleBudget
from edgeprune.structure.blocks import block_layers, block_members
from edgeprune.prune.importance import keep_top
from edgeprune.structure.physical import allowed_widths

# Predicted network cost at per-group widths with some layers removed.
JointCostFn = Callable[[dict[str, int], list[str]], float]


@dataclass
class Plan:
    """One candidate: the blocks removed, the threshold scale, the channels kept and what it costs."""

    blocks: list[str]
    scale: float  # a channel goes when its γ is below scale × its layer's threshold in every BN that holds it
    kept: dict[str, list[int]]
    cost: float
    damage: float  # γ mass of above-threshold channels removed (by either route): the accuracy proxy


class Planner:
    """Plans over (number of least important blocks removed, threshold scale ≥ 1)."""

    def __init__(self, space: LayerSpace, group_bns: dict[str, list[str]], gammas: dict[str, np.ndarray],
                 thresholds: dict[str, float], ranked: list[str], cost_fn: JointCostFn, min_width: int = 1,
                 round_to: int | None = None):
        self.space, self.group_bns, self.gammas, self.thresholds = space, group_bns, gammas, thresholds
        self.ranked, self.cost_fn, self.min_width, self.round_to = ranked, cost_fn, min_width, round_to
        self.divisors = space.divisors()
        self.dense = space.dense_widths()
        self.group_layers = {g: {l.name for l in space.layers if g in (l.in_group, l.out_group)} for g in self.dense}

    def _live_mass(self, bn: str) -> np.ndarray:
        """γ of a BN layer's channels at or above its threshold (those below count as already dead)."""
        g = self.gammas[bn]
        return np.where(g >= self.thresholds[bn], g, 0.0)

    def _scores(self, group: str, removed_bns: set[str]) -> tuple[np.ndarray, np.ndarray]:
        """Per channel: max over the group's surviving BN layers of γ / threshold, and the live γ mass."""
        bns = [b for b in self.group_bns[group] if b not in removed_bns]
        if not bns:  # no scaling factor to judge by: the group stays dense
            return np.full(self.dense[group], np.inf), np.zeros(self.dense[group])
        score = np.max([self.gammas[b] / self.thresholds[b] for b in bns], axis=0)
        return score, np.sum([self._live_mass(b) for b in bns], axis=0)

    def _alive(self, removed_layers: set[str]) -> list[str]:
        """Groups that still have a layer once ``removed_layers`` are gone."""
        return [g for g, layers in self.group_layers.items() if layers - removed_layers]

    def plan(self, n_blocks: int, scale: float) -> Plan:
        """Remove the ``n_blocks`` least important blocks, then the channels scoring below ``scale``."""
        blocks = self.ranked[:n_blocks]
        removed_layers = set(block_layers(self.space, blocks))
        removed_bns = set(block_members(self.gammas, blocks))
        damage = float(sum(self._live_mass(b).sum() for b in removed_bns))
        kept = {}
        for g in self._alive(removed_layers):
            score, mass = self._scores(g, removed_bns)
            width = max(int((score >= scale).sum()), min(self.min_width, self.dense[g]))
            width = next(w for w in allowed_widths(self.dense[g], self.round_to, self.divisors.get(g, 1))
                         if w >= width)
            keep = np.array(keep_top({g: score}, {g: width}, self.divisors)[g])
            kept[g] = [int(i) for i in keep]
            damage += float(mass.sum() - mass[keep].sum())
        widths = {g: len(idx) for g, idx in kept.items()}
        return Plan(blocks, scale, kept, float(self.cost_fn(widths, sorted(removed_layers))), damage)

    def scales(self, n_blocks: int) -> list[float]:
        """Candidate scales, ascending: 1 (the thresholds as found), then every channel score above it, then one
        past the largest (every judged channel goes, down to the minimum width)."""
        removed_bns = set(block_members(self.gammas, self.ranked[:n_blocks]))
        removed_layers = set(block_layers(self.space, self.ranked[:n_blocks]))
        values = np.concatenate([self._scores(g, removed_bns)[0] for g in self._alive(removed_layers)] + [[1.0]])
        values = np.unique(values[np.isfinite(values) & (values >= 1.0)])
        return [float(v) for v in values] + [float(values[-1]) + 1.0]

    def best_for(self, n_blocks: int, budget: float) -> Plan:
        """The plan with the smallest scale whose predicted cost meets ``budget`` (or the largest scale's plan)."""
        scales = self.scales(n_blocks)
        lo, hi = 0, len(scales) - 1  # cost falls as the scale grows: bisect on the candidate list
        best = self.plan(n_blocks, scales[hi])
        if best.cost > budget:
            return best
        while lo < hi:
            mid = (lo + hi) // 2
            trial = self.plan(n_blocks, scales[mid])
            if trial.cost <= budget:
                best, hi = trial, mid
            else:
                lo = mid + 1
        return best

    def search(self, budget: float, max_blocks: int | None) -> tuple[Plan, list[dict]]:
        """Over every allowed number of blocks, the in-budget plan with the least damage (then the lowest cost)."""
        limit = len(self.ranked) if max_blocks is None else min(max_blocks, len(self.ranked))
        plans, history = [], []
        for n in range(limit + 1):
            p = self.best_for(n, budget)
            plans.append(p)
            history.append({"blocks_removed": n, "scale": p.scale, "predicted_cost": p.cost, "damage": p.damage,
                            "feasible": bool(p.cost <= budget)})
        feasible = [p for p in plans if p.cost <= budget]
        if not feasible:
            floor = min(p.cost for p in plans)
            raise InfeasibleBudget(f"budget {budget:.4g} is below the floor of {floor:.4g}, the lowest predicted "
                                   f"cost joint pruning reaches (up to {limit} block(s) removed, every group at its "
                                   "minimum width)")
        return min(feasible, key=lambda p: (p.damage, p.cost)), history
