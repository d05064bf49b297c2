"""Physical channel removal through torch-pruning, and the width grids pruning methods search on."""
from __future__ import annotations

import copy
import operator
from collections.abc import Iterable

import torch.nn as nn

from edgeprune.models.layer_space import LayerSpace
from edgeprune.prune.graph import build_graph, current_width, group_root, out_group, prunable_names


def check_kept(name: str, idxs: Iterable[int], width: int) -> list[int]:
    """Validated, sorted kept indices of one group (in range, unique, at least one)."""
    try:
        idxs = [operator.index(i) for i in idxs]
    except TypeError as exc:
        raise ValueError(f"group {name}: kept indices must be integers ({exc})") from exc
    if not idxs:
        raise ValueError(f"group {name}: at least one channel must be kept")
    bad = [i for i in idxs if not 0 <= i < width]
    if bad:
        raise ValueError(f"group {name}: kept indices {bad[:5]} outside 0..{width - 1}")
    if len(set(idxs)) != len(idxs):
        dup = sorted({i for i in idxs if idxs.count(i) > 1})
        raise ValueError(f"group {name}: kept indices repeat {dup[:5]}")
    return sorted(idxs)


def apply_kept(model: nn.Module, space: LayerSpace, kept: dict[str, Iterable[int]]) -> nn.Module:
    """A deep copy of ``model`` in which each group keeps only the channels ``kept[group]`` (in original order).

    Indices refer to the group's channels in ``model`` as it is (dense or already pruned); groups not in
    ``kept`` are left alone. The copy keeps the original's train/eval mode.
    """
    prunable_names(space, kept)
    pruned = copy.deepcopy(model)
    dg = build_graph(pruned, space.input_shape)
    plan = []
    for name, idxs in kept.items():
        root = group_root(pruned, name)
        width = current_width(dg, root)
        keep = set(check_kept(name, idxs, width))
        plan.append((root, [i for i in range(width) if i not in keep]))
    for root, removed in plan:
        if removed:
            out_group(dg, root, removed).prune()
    return pruned


def allowed_widths(dense: int, round_to: int | None = None) -> list[int]:
    """Widths a group may take, ascending: every 1..dense, or multiples of ``round_to`` plus dense itself."""
    if round_to is None or dense < round_to:
        return list(range(1, dense + 1))
    grid = list(range(round_to, dense + 1, round_to))
    return grid if grid[-1] == dense else grid + [dense]


def min_widths(space: LayerSpace, round_to: int | None = None) -> dict[str, int]:
    """The narrowest width of every prunable group (1, or the round-to multiple): the cost floor."""
    return {g.name: allowed_widths(g.width, round_to)[0] for g in space.prunable_groups}


def round_widths(widths: dict[str, int], multiple: int | None, dense: dict[str, int]) -> dict[str, int]:
    """Each width snapped to the nearest of ``allowed_widths`` (multiples of ``multiple`` up to dense, and dense;
    ties go up); groups narrower than the multiple stay as they are."""
    if multiple is None:
        return dict(widths)
    if isinstance(multiple, bool) or not isinstance(multiple, int) or multiple < 1:
        raise ValueError(f"round-to must be a positive integer, got {multiple!r}")
    out = {}
    for name, w in widths.items():
        grid = allowed_widths(dense[name], multiple)
        out[name] = min(grid, key=lambda g: (abs(g - w), -g))
    return out
