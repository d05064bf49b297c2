"""A NAS-Bench-201-style cell network: 4-node cells, one of five ops on each of the six edges."""

from __future__ import annotations

import random

import torch
from torch import nn

__all__ = ["CELL_OPS", "CellNet", "cellnet", "parse_arch", "random_arch"]

CELL_OPS = ("none", "skip", "conv1x1", "conv3x3", "avgpool3x3")
EDGES = ((0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3))  # (from node, to node), in arch-string order


def parse_arch(arch: str) -> tuple[str, ...]:
    """Six op names from ``op|op|op|op|op|op`` (edge order 0→1, 0→2, 1→2, 0→3, 1→3, 2→3)."""
    ops = tuple(arch.split("|"))
    if len(ops) != len(EDGES) or any(op not in CELL_OPS for op in ops):
        raise ValueError(f"cell arch must be 6 ops from {CELL_OPS} joined by '|', got {arch!r}")
    return ops


def random_arch(rng: random.Random) -> str:
    """A uniformly drawn cell (one of 5^6 = 15,625)."""
    return "|".join(rng.choice(CELL_OPS) for _ in EDGES)


def _relu_conv_bn(c: int, k: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.ReLU(), nn.Conv2d(c, c, k, stride, k // 2, bias=False), nn.BatchNorm2d(c))


def _edge_op(op: str, c: int) -> nn.Module:
    if op == "skip":
        return nn.Identity()
    if op == "conv1x1":
        return _relu_conv_bn(c, 1)
    if op == "conv3x3":
        return _relu_conv_bn(c, 3)
    return nn.AvgPool2d(3, 1, 1, count_include_pad=False)


class Cell(nn.Module):
    """Node j = Σ op(node i) over live edges i→j; 'none' edges and nodes that never reach node 3 are left out."""

    def __init__(self, ops: tuple[str, ...], c: int) -> None:
        super().__init__()
        reach_in = {0}
        for (i, j), op in zip(EDGES, ops):
            if op != "none" and i in reach_in:
                reach_in.add(j)
        reach_out = {3}
        for (i, j), op in reversed(list(zip(EDGES, ops))):
            if op != "none" and j in reach_out:
                reach_out.add(i)
        live = reach_in & reach_out
        self.edges = [(i, j) for (i, j), op in zip(EDGES, ops) if op != "none" and i in live and j in live]
        self.ops = nn.ModuleList(_edge_op(op, c) for (i, j), op in zip(EDGES, ops)
                                 if op != "none" and i in live and j in live)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes: dict[int, torch.Tensor] = {0: x}
        for (i, j), op in zip(self.edges, self.ops):
            y = op(nodes[i])
            nodes[j] = y if j not in nodes else nodes[j] + y
        return nodes[3] if 3 in nodes else x * 0.0  # a cell with no path to its output emits zeros


class ReductionBlock(nn.Module):
    """NAS-Bench-201's residual reduction: two ReLU-conv-BN (first stride 2), shortcut avg-pool + 1×1 conv."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.a = _relu_conv_bn_io(c_in, c_out, 3, 2)
        self.b = _relu_conv_bn_io(c_out, c_out, 3, 1)
        self.shortcut = nn.Sequential(nn.AvgPool2d(2, 2), nn.Conv2d(c_in, c_out, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(self.a(x)) + self.shortcut(x)


def _relu_conv_bn_io(c_in: int, c_out: int, k: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.ReLU(), nn.Conv2d(c_in, c_out, k, stride, k // 2, bias=False), nn.BatchNorm2d(c_out))


class CellNet(nn.Module):
    """Stem, three stages of ``cells`` identical cells (C, 2C, 4C) joined by reduction blocks, GAP, linear."""

    def __init__(self, arch: str, channels: int = 16, cells: int = 5, num_classes: int = 10) -> None:
        super().__init__()
        ops = parse_arch(arch)
        layers: list[nn.Module] = [nn.Conv2d(3, channels, 3, 1, 1, bias=False), nn.BatchNorm2d(channels)]
        c = channels
        for stage in range(3):
            if stage:
                layers.append(ReductionBlock(c, 2 * c))
                c *= 2
            layers += [Cell(ops, c) for _ in range(cells)]
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.BatchNorm2d(c), nn.ReLU())
        self.classifier = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head(self.features(x))
        return self.classifier(nn.functional.adaptive_avg_pool2d(x, 1).flatten(1))


def cellnet(arch: str = "conv3x3|conv3x3|conv3x3|skip|conv3x3|conv3x3", channels: int = 16, cells: int = 5,
            num_classes: int = 10) -> CellNet:
    """Build a cell network for 32×32 inputs."""
    return CellNet(arch, channels, cells, num_classes)
