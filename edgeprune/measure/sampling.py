"""Which (c_in, c_out) pairs to measure for each layer signature (corners, layer lines, grid, random)."""
from __future__ import annotations

import random

import numpy as np

from edgeprune.models.layer_space import Layer, LayerSpace


def _axis(layers: list[Layer], attr: str, group_attr: str) -> tuple[bool, list[int]]:
    """Whether a dimension is prunable for any layer of the signature, and its range or fixed values."""
    dense = sorted({getattr(l, attr) for l in layers})
    step = layers[0].signature.groups  # a grouped conv takes only multiples of its group count
    if any(getattr(l, group_attr) for l in layers):
        return True, list(range(step, max(dense) + 1, step))
    return False, dense


def _spaced(values: list[int], n: int) -> list[int]:
    """About ``n`` values spread evenly over ``values`` (ends included)."""
    if n >= len(values):
        return list(values)
    idx = np.unique(np.linspace(0, len(values) - 1, max(n, 2)).round().astype(int))
    return [values[i] for i in idx]


def sample_signature(layers: list[Layer], budget: int, rng: random.Random) -> list[tuple[int, int]]:
    """Up to ``budget`` distinct (c_in, c_out) points for layers sharing one signature."""
    depthwise = layers[0].signature.op == "dwconv"
    in_var, ins = _axis(layers, "c_in", "in_group")
    out_var, outs = _axis(layers, "c_out", "out_group")
    if depthwise:
        values = sorted(set(ins) | set(outs)) if (in_var or out_var) else sorted({l.c_out for l in layers})
        return [(c, c) for c in _spaced(values, budget)]

    chosen: dict[tuple[int, int], None] = {}

    def take(points):
        for p in points:
            if len(chosen) >= budget:
                return
            chosen.setdefault(p, None)

    # Dense points and corners first: they anchor every fit.
    take((l.c_in, l.c_out) for l in layers)
    take((i, o) for i in (ins[0], ins[-1]) for o in (outs[0], outs[-1]))
    # Lines the real layers move along when their groups are pruned (NetAdapt's lookup tables).
    lines = []
    step = layers[0].signature.groups
    for l in layers:
        if l.out_group and not l.in_group:
            lines.append([(l.c_in, o) for o in range(step, l.c_out + 1, step)])
        elif l.in_group and not l.out_group:
            lines.append([(i, l.c_out) for i in range(step, l.c_in + 1, step)])
    line_budget = budget // 2 // max(len(lines), 1)
    for line in lines:
        take(line[i] for i in _spaced(list(range(len(line))), line_budget))
    # A grid over the whole box, then random points (ECC-style sampling of the bilinear surface).
    side = max(2, int((budget - len(chosen)) ** 0.5 / 1.5))
    take((i, o) for i in _spaced(ins, side) for o in _spaced(outs, side))
    total = len(ins) * len(outs)
    while len(chosen) < min(budget, total):
        take([(rng.choice(ins), rng.choice(outs))])
    return list(chosen)


def plan_layer_points(space: LayerSpace, points_per_signature: int, seed: int = 0) -> dict[str, list]:
    """Points to measure, by signature key."""
    by_sig: dict[str, list[Layer]] = {}
    for layer in space.layers:
        by_sig.setdefault(layer.signature.key(), []).append(layer)
    plan = {}
    for key, layers in sorted(by_sig.items()):
        rng = random.Random(f"{seed}|{key}")
        plan[key] = sample_signature(layers, points_per_signature, rng)
    return plan
