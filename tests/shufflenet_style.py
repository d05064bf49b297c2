"""A small ShuffleNetV2-style network for the wiring tests: chunk() channel split, concat, view-transpose shuffle."""
from __future__ import annotations

import torch
import torch.nn as nn


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """ShuffleNet's channel shuffle written the usual way: view, transpose, contiguous, view."""
    n, c, h, w = x.shape
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).contiguous().view(n, c, h, w)


def op_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """The same shuffle as one op (what ``nn.ChannelShuffle`` runs)."""
    return nn.functional.channel_shuffle(x, groups)


def conv_bn(c_in: int, c_out: int, k: int = 1, stride: int = 1, groups: int = 1, relu: bool = True) -> nn.Sequential:
    layers = [nn.Conv2d(c_in, c_out, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(c_out)]
    return nn.Sequential(*layers, *([nn.ReLU(inplace=True)] if relu else []))


class ShuffleBlock(nn.Module):
    """Stride 1: split the input in halves, transform one, concat, shuffle. Stride 2: two branches on the input."""

    def __init__(self, c_in: int, c_out: int, stride: int, shuffle=channel_shuffle):
        super().__init__()
        half = c_out // 2
        self.stride, self.shuffle = stride, shuffle
        if stride > 1:
            self.branch1 = nn.Sequential(conv_bn(c_in, c_in, 3, stride, c_in, relu=False), conv_bn(c_in, half))
        mid_in = c_in if stride > 1 else half
        self.branch2 = nn.Sequential(conv_bn(mid_in, half), conv_bn(half, half, 3, stride, half, relu=False),
                                     conv_bn(half, half))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            x1, x2 = x.chunk(2, dim=1)
            out = torch.cat((x1, self.branch2(x2)), dim=1)
        else:
            out = torch.cat((self.branch1(x), self.branch2(x)), dim=1)
        return self.shuffle(out, 2)


class ShuffleNetV2Style(nn.Module):
    """Stem, stages of one stride-2 block and ``repeat - 1`` stride-1 blocks, a 1×1 head conv, pooling and a
    classifier (``widths=(48, 96, 192), repeats=(4, 8, 4)`` has ShuffleNetV2 0.5×'s stages)."""

    def __init__(self, widths: tuple[int, ...] = (16, 32), classes: int = 10, shuffle=channel_shuffle,
                 repeats: tuple[int, ...] = (3, 3)):
        super().__init__()
        self.stem = conv_bn(3, 8, 3)
        blocks, c_in = [], 8
        for width, repeat in zip(widths, repeats):
            blocks += [ShuffleBlock(c_in, width, 2, shuffle)]
            blocks += [ShuffleBlock(width, width, 1, shuffle) for _ in range(repeat - 1)]
            c_in = width
        self.stages = nn.Sequential(*blocks)
        self.head = conv_bn(c_in, 64)
        self.fc = nn.Linear(64, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.head(self.stages(self.stem(x))).mean((2, 3)))


def flat_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """A shuffle through a 4-D view, which neither torch-pruning nor edgeprune's shuffle maps follow."""
    n, c, h, w = x.shape
    return x.view(n, groups, c // groups, h * w).transpose(1, 2).reshape(n, c, h, w)


def shufflenet_style(seed: int = 0, shuffle=channel_shuffle) -> ShuffleNetV2Style:
    """The network with random weights and non-trivial BN statistics (so pruning mistakes show), in eval mode."""
    torch.manual_seed(seed)
    net = ShuffleNetV2Style(shuffle=shuffle)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.3, 0.3)
                m.running_var.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.4)
    return net.eval()


def flat_shuffle_net() -> tuple[ShuffleNetV2Style, tuple[int, ...]]:
    """The network with ``flat_shuffle`` (a `file.py:function` spec for the CLI tests)."""
    return shufflenet_style(shuffle=flat_shuffle), (1, 3, 32, 32)
