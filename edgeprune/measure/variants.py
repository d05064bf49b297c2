"""Whole-network variants with arbitrary per-group widths, for end-to-end measurements."""
from __future__ import annotations

import random

import torch.nn as nn

from edgeprune.models.layer_space import LayerSpace
from edgeprune.prune.physical import apply_kept


def check_widths(space: LayerSpace, widths: dict[str, int]) -> None:
    """Raise ValueError when ``widths`` names unknown groups or leaves a group's valid range."""
    dense = space.dense_widths()
    unknown = sorted(set(widths) - set(dense))
    if unknown:
        raise ValueError(f"unknown or non-prunable channel groups: {unknown}; prunable: {sorted(dense)}")
    for name, w in widths.items():
        if not 1 <= int(w) <= dense[name]:
            raise ValueError(f"group {name}: width {w} outside 1..{dense[name]}")


def build_variant(model: nn.Module, space: LayerSpace, widths: dict[str, int]) -> nn.Module:
    """An eval-mode copy of ``model`` with each group physically narrowed to its first ``widths[g]`` channels."""
    check_widths(space, widths)
    kept = {name: range(int(w)) for name, w in widths.items() if int(w) != space.dense_widths()[name]}
    return apply_kept(model, space, kept).eval()


def random_widths(space: LayerSpace, rng: random.Random, low: float = 0.2) -> dict[str, int]:
    """Per-group widths drawn uniformly from [low·dense, dense] (at least 1 channel)."""
    return {g.name: rng.randint(max(1, round(low * g.width)), g.width) for g in space.prunable_groups}


def round_widths(widths: dict[str, int], dense: dict[str, int], multiple: int) -> dict[str, int]:
    """Widths rounded to the nearest multiple (at least one multiple, at most dense)."""
    return {k: min(dense[k], max(multiple, multiple * round(w / multiple))) if dense[k] >= multiple else w
            for k, w in widths.items()}


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
    return round_widths(widths, dense, 8) if rng.random() < 0.5 else widths
