"""Whole-network variants with arbitrary per-group widths, for end-to-end measurements."""
from __future__ import annotations

import random

import torch.nn as nn

from edgeprune.models.layer_space import LayerSpace
from edgeprune.structure.physical import apply_kept, leading_channels, round_widths


def check_widths(space: LayerSpace, widths: dict[str, int]) -> None:
    """Raise ValueError when ``widths`` names unknown groups or leaves a group's valid range."""
    groups = {g.name: g for g in space.prunable_groups}
    unknown = sorted(set(widths) - set(groups))
    if unknown:
        raise ValueError(f"unknown or non-prunable channel groups: {unknown}; prunable: {sorted(groups)}")
    for name, w in widths.items():
        if not 1 <= int(w) <= groups[name].width:
            raise ValueError(f"group {name}: width {w} outside 1..{groups[name].width}")
        if int(w) % groups[name].divisor:
            raise ValueError(f"group {name}: width {w} is not a multiple of {groups[name].divisor} "
                             "(it feeds a grouped conv or a channel split)")


def build_variant(model: nn.Module, space: LayerSpace, widths: dict[str, int]) -> nn.Module:
    """An eval-mode copy of ``model`` with each group physically narrowed to its leading ``widths[g]`` channels."""
    check_widths(space, widths)
    groups = {g.name: g for g in space.prunable_groups}
    kept = {name: leading_channels(groups[name].width, int(w), groups[name].divisor)
            for name, w in widths.items() if int(w) != groups[name].width}
    return apply_kept(model, space, kept).eval()


def random_widths(space: LayerSpace, rng: random.Random, low: float = 0.2) -> dict[str, int]:
    """Per-group widths drawn uniformly from [low·dense, dense] (at least 1 channel; grouped-conv multiples)."""
    widths = {g.name: rng.randint(max(1, round(low * g.width)), g.width) for g in space.prunable_groups}
    return round_widths(widths, None, space.dense_widths(), _divisors(space))


def design_variant(space: LayerSpace, rng: random.Random, low: float = 0.2) -> dict[str, int]:
    """A variant for fitting cost models: random or uniformly scaled widths, half of them on multiples of 8.

    Runtimes are much faster on SIMD-aligned channel counts, so a design with only arbitrary counts would
    teach a cost model nothing about the staircase pruning will land on.
    """
    dense = space.dense_widths()
    if rng.random() < 0.25:
        scale = rng.uniform(low, 1.0)
        widths = {k: max(1, round(scale * w)) for k, w in dense.items()}
    else:
        widths = random_widths(space, rng, low)
    return round_widths(widths, 8 if rng.random() < 0.5 else None, dense, _divisors(space))


def _divisors(space: LayerSpace) -> dict[str, int]:
    return {g.name: g.divisor for g in space.prunable_groups}
