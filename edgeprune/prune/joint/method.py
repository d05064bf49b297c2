"""`prune_joint`: sparse-train with polarization, threshold γ per layer, remove blocks and channels to the budget."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch.nn as nn

from edgeprune.costmodel.model import CostModel
from edgeprune.models.layer_space import LayerSpace
from edgeprune.progress import SILENT, Progress
from edgeprune.structure.blocks import block_layers, block_members, removable_blocks
from edgeprune.prune.joint.ranking import rank_blocks
from edgeprune.prune.joint.histograms import pyplot, save_histograms
from edgeprune.prune.joint.polarize import sparse_train
from edgeprune.prune.joint.scaling import batchnorms, gammas, group_bns
from edgeprune.prune.joint.select import Planner
from edgeprune.prune.joint.settings import JointSettings
from edgeprune.prune.joint.split import saving_split
from edgeprune.prune.joint.thresholds import histogram_threshold, sparsity
from edgeprune.prune.result import PruneResult


@dataclass
class JointResult(PruneResult):
    """A PruneResult whose ``kept`` covers only groups with layers left, plus what decided the blocks."""

    removed_layers: list[str] = field(default_factory=list)
    thresholds: dict[str, float] = field(default_factory=dict)  # per BN layer, before scaling
    scale: float = 1.0
    sparsity: dict[str, float] = field(default_factory=dict)
    ranking: list[str] = field(default_factory=list)  # removable blocks, least important first
    split: dict = field(default_factory=dict)  # predicted saving from depth vs width
    planner: Planner | None = field(default=None, repr=False, compare=False)  # re-plans for another budget
    max_blocks: int | None = None


def _polarized(model: nn.Module, by_group: dict[str, list[str]], blocks: list[str]) -> dict[str, nn.Module]:
    """BN layers to regularize: those of prunable groups and those inside removable blocks, in module order."""
    all_bns = batchnorms(model)
    wanted = {b for bns in by_group.values() for b in bns} | set(block_members(all_bns, blocks))
    return {n: bn for n, bn in all_bns.items() if n in wanted}


def prune_joint(model: nn.Module, space: LayerSpace, cost_model: CostModel, budget_abs: float, data,
                settings: JointSettings = JointSettings(), round_to: int | None = None,
                checkpoint_dir: str | Path | None = None,
                progress: Callable[[dict], None] | None = None, reporter: Progress = SILENT) -> JointResult:
    """Sparse-train ``model`` in place, then pick the blocks and channels to remove so the predicted cost (the
    removed blocks' layers contributing nothing) meets ``budget_abs`` with the least above-threshold γ removed."""
    if settings.histogram_png:
        pyplot()  # fail before the sparse training, not after it
    blocks = removable_blocks(model) if settings.max_blocks != 0 else []
    by_group = group_bns(model, space)
    bns = _polarized(model, by_group, blocks)
    if not bns:
        raise ValueError("joint pruning ranks channels by BatchNorm scaling factors, and this model has no "
                         "BatchNorm layer in a prunable group or removable block")
    tell = (lambda r: progress({"phase": "sparse", **r})) if progress else None
    history = [{"phase": "sparse", **r} for r in sparse_train(model, bns, data, settings, checkpoint_dir, tell,
                                                                     reporter)]
    reporter.finish()
    gam = gammas(model, bns)
    thresholds = {}
    for name, g in gam.items():
        found = histogram_threshold(g, settings.bin_width)
        thresholds[name] = settings.bin_width if found is None else found  # no valley: only ~zero γ are dead
    spars = {n: sparsity(g, thresholds[n]) for n, g in gam.items()}
    ranking = rank_blocks(blocks, spars, {n: float(g.mean()) for n, g in gam.items()})

    def cost_fn(widths: dict[str, int], removed: list[str]) -> float:
        return float(cost_model.predict([widths], removed)[0])

    planner = Planner(space, by_group, gam, thresholds, ranking, cost_fn, settings.min_width, round_to)
    result = JointResult("joint", {}, {}, 0.0, history, thresholds=thresholds, sparsity=spars, ranking=ranking,
                         planner=planner, max_blocks=settings.max_blocks)
    result = replan(result, space, budget_abs)
    if progress:
        progress({"phase": "plan", "blocks_removed": result.blocks_removed, "scale": result.scale,
                  "predicted_cost": result.predicted_cost})
    if settings.histogram_png:
        save_histograms(gam, thresholds, settings.bin_width, settings.histogram_png)
    return result


def replan(result: JointResult, space: LayerSpace, budget_abs: float) -> JointResult:
    """The plan for ``budget_abs`` from the same sparse-trained γ (also the closed loop's re-selection)."""
    planner, cost_fn = result.planner, result.planner.cost_fn
    plan, search = planner.search(budget_abs, result.max_blocks)
    removed = block_layers(space, plan.blocks)
    widths = {g: len(k) for g, k in plan.kept.items()}
    split = saving_split(cost_fn({}, []), cost_fn({}, removed), cost_fn(widths, []), plan.cost)
    history = [r for r in result.history if r.get("phase") != "plan"] + [{"phase": "plan", **r} for r in search]
    return replace(result, widths=widths, kept=plan.kept, predicted_cost=plan.cost, history=history,
                   blocks_removed=plan.blocks, removed_layers=removed, scale=plan.scale, split=split)


def joint_summary(result: JointResult, space: LayerSpace) -> dict:
    """What `compress --json` adds for the joint method: blocks and channels removed, depth-vs-width split."""
    dense = space.dense_widths()
    return {"blocks_removed": list(result.blocks_removed),
            "channels_removed": int(sum(dense[g] - w for g, w in result.widths.items())),
            "threshold_scale": result.scale, "removable_blocks": len(result.ranking),
            "saving_split": {"predicted": result.split}}


def floor_layers(model: nn.Module, space: LayerSpace, settings: JointSettings) -> list[str]:
    """Layers joint pruning could remove at most (all removable blocks'; none when block removal is off): with
    every group at its minimum width this gives a lower bound on the reachable cost."""
    return [] if settings.max_blocks == 0 else block_layers(space, removable_blocks(model))


def describe(record: dict) -> str:
    """One progress line for a sparse-training epoch or the chosen plan."""
    if record["phase"] == "sparse":
        return (f"joint sparse training epoch {record['epoch']}: cross-entropy {record['ce']:.4f}, "
                f"polarization {record['polarization']:.4g}")
    return (f"joint plan: remove {len(record['blocks_removed'])} block(s) {record['blocks_removed']}, thresholds "
            f"× {record['scale']:.3g}, predicted {record['predicted_cost']:.4g}")
