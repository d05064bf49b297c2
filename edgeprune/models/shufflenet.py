"""A ShuffleNetV2-style family for 32×32 inputs: channel split, concat and channel shuffle, any stage widths."""

from __future__ import annotations

import random

import torch
from torch import nn

__all__ = ["ShuffleNet", "random_shufflenet_config", "shufflenet"]


def _conv_bn(c_in: int, c_out: int, k: int, stride: int = 1, groups: int = 1, relu: bool = True) -> list[nn.Module]:
    parts: list[nn.Module] = [nn.Conv2d(c_in, c_out, k, stride, k // 2, groups=groups, bias=False),
                              nn.BatchNorm2d(c_out)]
    return parts + [nn.ReLU()] if relu else parts


def channel_shuffle(x: torch.Tensor, groups: int = 2) -> torch.Tensor:
    """Interleave the channels of ``groups`` halves (reshape → transpose → reshape)."""
    n, c, h, w = x.shape
    return x.reshape(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


class ShuffleUnit(nn.Module):
    """Same width, stride 1: split channels, transform one half, concat, shuffle. Otherwise both halves are
    transformed (the shortcut half by a depthwise + 1×1 conv), at ``stride``."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        if c_out % 2:
            raise ValueError(f"shuffle units need an even width, got {c_out}")
        half = c_out // 2
        self.split = stride == 1 and c_in == c_out
        branch_in = c_in // 2 if self.split else c_in
        self.branch = nn.Sequential(*_conv_bn(branch_in, half, 1), *_conv_bn(half, half, 3, stride, half, False),
                                    *_conv_bn(half, half, 1))
        self.shortcut = None if self.split else nn.Sequential(*_conv_bn(c_in, c_in, 3, stride, c_in, False),
                                                              *_conv_bn(c_in, half, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.shortcut is None:
            a, b = x.chunk(2, dim=1)
            out = torch.cat([a, self.branch(b)], 1)
        else:
            out = torch.cat([self.shortcut(x), self.branch(x)], 1)
        return channel_shuffle(out)


class ShuffleNet(nn.Module):
    """Stem 3×3 conv, stages of shuffle units (first unit of a stage with ``stride``), 1×1 conv, GAP, linear."""

    def __init__(self, stem: int = 24, widths: tuple[int, ...] = (116, 232, 464), repeats: tuple[int, ...] = (4, 8, 4),
                 strides: tuple[int, ...] = (1, 2, 2), last: int = 1024, num_classes: int = 10) -> None:
        super().__init__()
        if not len(widths) == len(repeats) == len(strides):
            raise ValueError("widths, repeats and strides need one entry per stage")
        layers: list[nn.Module] = _conv_bn(3, stem, 3)
        c = stem
        for w, n, s in zip(widths, repeats, strides):
            for i in range(n):
                layers.append(ShuffleUnit(c, w, s if i == 0 else 1))
                c = w
        layers += _conv_bn(c, last, 1)
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(last, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(nn.functional.adaptive_avg_pool2d(self.features(x), 1).flatten(1))


def random_shufflenet_config(rng: random.Random) -> dict:
    """Random stem, stage widths (even, growing), repeats and final width, for fitting and testing cost models."""
    stem = rng.choice((16, 24, 32))
    base = rng.randrange(24, 129, 2)
    widths = [base]
    for _ in range(2):
        widths.append(rng.randrange(widths[-1], 2 * widths[-1] + 1, 2))
    return {"stem": stem, "widths": widths, "repeats": [rng.randint(1, 4) for _ in range(3)],
            "strides": [1, 2, 2], "last": rng.choice((256, 512, 1024))}


def shufflenet(stem: int = 24, widths=(116, 232, 464), repeats=(4, 8, 4), strides=(1, 2, 2), last: int = 1024,
               num_classes: int = 10) -> ShuffleNet:
    """Build a ShuffleNetV2-style network for 32×32 inputs."""
    return ShuffleNet(stem, tuple(widths), tuple(repeats), tuple(strides), last, num_classes)
