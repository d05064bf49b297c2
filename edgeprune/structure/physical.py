"""Physical channel removal through torch-pruning, and the width grids pruning methods search on."""
from __future__ import annotations

import copy
import math
import operator
from collections.abc import Iterable

import torch.nn as nn

from edgeprune.models.layer_space import LayerSpace
from edgeprune.structure.graph import build_graph, current_width, group_root, out_group, prunable_names


def check_kept(name: str, idxs: Iterable[int], width: int, divisor: int = 1) -> list[int]:
    """Validated, sorted kept indices of one group (in range, unique, at least one, same in every conv-group chunk)."""
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
    if divisor > 1:
        chunk = width // divisor
        patterns = {tuple(i % chunk for i in idxs if i // chunk == c) for c in range(divisor)}
        if len(patterns) != 1:
            raise ValueError(f"group {name} feeds a grouped conv ({divisor} groups of {chunk} channels): every "
                             "group must keep the same channel positions")
    return sorted(idxs)


def apply_kept(model: nn.Module, space: LayerSpace, kept: dict[str, Iterable[int]]) -> nn.Module:
    """A deep copy of ``model`` in which each group keeps only the channels ``kept[group]`` (in original order).

    Indices refer to the group's channels in ``model`` as it is (dense or already pruned); groups not in
    ``kept`` are left alone. The copy keeps the original's train/eval mode.
    """
    prunable_names(space, kept)
    divisors = {g.name: g.divisor for g in space.groups}
    pruned = copy.deepcopy(model)
    dg = build_graph(pruned, space.input_shape)
    plan = []
    for name, idxs in kept.items():
        root = group_root(pruned, name)
        width = current_width(dg, root)
        keep = set(check_kept(name, idxs, width, divisors[name]))
        plan.append((root, [i for i in range(width) if i not in keep]))
    for root, removed in plan:
        if removed:
            out_group(dg, root, removed).prune()
            if getattr(dg, "shuffles", None) or getattr(dg, "splits", None):
                dg = build_graph(pruned, space.input_shape)  # shuffle and split maps hold the widths they saw
    return pruned


def leading_channels(width: int, keep: int, divisor: int = 1) -> list[int]:
    """The first ``keep`` channels of a group, or with grouped-conv chunks the first ``keep/divisor`` of each."""
    chunk, per = width // divisor, keep // divisor
    return [c * chunk + i for c in range(divisor) for i in range(per)]


def allowed_widths(dense: int, round_to: int | None = None, divisor: int = 1) -> list[int]:
    """Widths a group may take, ascending: multiples of ``divisor`` (1: any), or of ``round_to`` too, plus dense."""
    step = math.lcm(round_to or 1, divisor)
    if step == 1 or dense < step:
        return list(range(divisor, dense + 1, divisor))
    grid = list(range(step, dense + 1, step))
    return grid if grid[-1] == dense else grid + [dense]


def keep_floor(width: int, min_keep: float = 0.0, at_least: int = 1) -> int:
    """The fewest channels a group of ``width`` may keep: ``min_keep`` of them (a share), and at least ``at_least``."""
    return min(width, max(at_least, math.ceil(min_keep * width - 1e-9)))


def min_widths(space: LayerSpace, round_to: int | None = None, min_keep: float = 0.0) -> dict[str, int]:
    """The narrowest width of every prunable group (1, or the round-to / grouped-conv multiple, and no less than
    ``min_keep`` of the group): the cost floor."""
    return {g.name: min(w for w in allowed_widths(g.width, round_to, g.divisor) if w >= keep_floor(g.width, min_keep))
            for g in space.prunable_groups}


def round_widths(widths: dict[str, int], multiple: int | None, dense: dict[str, int],
                 divisors: dict[str, int] | None = None) -> dict[str, int]:
    """Each width snapped to the nearest of ``allowed_widths`` (multiples of ``multiple`` and of the group's
    grouped-conv divisor up to dense, and dense; ties go up); groups narrower than the multiple stay as they are."""
    if multiple is not None and (isinstance(multiple, bool) or not isinstance(multiple, int) or multiple < 1):
        raise ValueError(f"round-to must be a positive integer, got {multiple!r}")
    divisors = divisors or {}
    if multiple is None and not any(d > 1 for d in divisors.values()):
        return dict(widths)
    out = {}
    for name, w in widths.items():
        grid = allowed_widths(dense[name], multiple, divisors.get(name, 1))
        out[name] = min(grid, key=lambda g: (abs(g - w), -g))
    return out
