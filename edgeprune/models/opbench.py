"""Single-op networks for platform micro-benchmarks: one op of every kind the runtime runs, at given sizes."""
from __future__ import annotations

import random

import torch
from torch import nn

from edgeprune.models.shufflenet import channel_shuffle

OPS = ("conv1x1", "conv3x3", "conv3x3s2", "dwconv3x3", "dwconv3x3s2", "avgpool3x3", "maxpool3x3", "add", "concat",
       "shuffle", "linear")


class SingleOp(nn.Module):
    """Input → one op (conv kinds with BN + ReLU, as runtimes fuse them) → output."""

    def __init__(self, op: str, c_in: int, c_out: int, hw: int = 32) -> None:
        super().__init__()
        if op not in OPS:
            raise ValueError(f"unknown micro-benchmark op {op!r}; choose from {OPS}")
        self.op, self.c_in, self.hw = op, c_in, hw
        if op.startswith(("conv", "dwconv")):
            k, s = (1 if op == "conv1x1" else 3), (2 if op.endswith("s2") else 1)
            groups = c_in if op.startswith("dw") else 1
            c_out = c_in if op.startswith("dw") else c_out
            self.body = nn.Sequential(nn.Conv2d(c_in, c_out, k, s, k // 2, groups=groups, bias=False),
                                      nn.BatchNorm2d(c_out), nn.ReLU())
        elif op == "avgpool3x3":
            self.body = nn.AvgPool2d(3, 1, 1)
        elif op == "maxpool3x3":
            self.body = nn.MaxPool2d(3, 1, 1)
        elif op == "linear":
            self.body = nn.Linear(c_in, c_out)
        else:
            self.body = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.op == "add":
            return x + x.flip(1)  # two distinct operands, so the add is not folded away
        if self.op == "concat":
            return torch.cat([x, x.flip(1)], 1)
        if self.op == "shuffle":
            return channel_shuffle(x)
        return self.body(x)


def single_op(op: str = "conv3x3", c_in: int = 16, c_out: int = 16, hw: int = 32) -> tuple[nn.Module, tuple]:
    """The single-op network and its input shape."""
    shape = (1, c_in) if op == "linear" else (1, c_in, hw, hw)
    if op == "shuffle" and c_in % 2:
        raise ValueError(f"channel shuffle needs an even channel count, got {c_in}")
    return SingleOp(op, c_in, c_out, hw).eval(), shape


def random_op_point(op: str, rng: random.Random) -> dict:
    """Sizes for one micro-benchmark of ``op``: channels 4–256 (half on multiples of 16), input 8–32 px."""
    def channels() -> int:
        return rng.randrange(16, 257, 16) if rng.random() < 0.5 else rng.randint(4, 256)

    c_in = channels()
    if op == "shuffle":
        c_in += c_in % 2
    return {"op": op, "c_in": c_in, "c_out": channels(), "hw": rng.choice((8, 16, 32))}
