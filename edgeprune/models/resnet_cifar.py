"""CIFAR ResNet (He et al. 2016, option-A shortcuts) with configurable stage and inner widths."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["BasicBlock", "CifarResNet", "resnet20", "resnet32", "resnet44", "resnet56"]


class PadShortcut(nn.Module):
    """Parameter-free option-A shortcut: subsample spatially, zero-pad channels to the branch width.

    ``source[j]`` is the input channel that output channel ``j`` copies, or -1 for a zero channel. Dense, it is
    the centred pad; after residual-stream pruning it is any map, run as pad-one-zero-channel + gather.
    """

    def __init__(self, stride: int, in_channels: int, out_channels: int) -> None:
        super().__init__()
        if out_channels < in_channels:
            raise ValueError(f"shortcut has {in_channels} channels but the block outputs only {out_channels}")
        self.stride = stride
        extra = out_channels - in_channels
        left = extra // 2
        source = [-1] * left + list(range(in_channels)) + [-1] * (extra - left)
        # Not persistent: pruning rebuilds it from the kept channels, and dense checkpoints stay loadable.
        self.register_buffer("source", torch.tensor(source, dtype=torch.long), persistent=False)
        self.set_source(self.source, in_channels)

    def set_source(self, source: torch.Tensor, in_channels: int) -> None:
        """Use a new channel map (entries in -1..in_channels-1) for inputs of ``in_channels`` channels."""
        self.source = source.to(self.source.device)
        self.in_channels = in_channels
        values = source.tolist()
        inner = [v for v in values if v >= 0]
        left = values.index(0) if in_channels and inner == list(range(in_channels)) else -1
        if left >= 0 and values[left:left + in_channels] == inner:
            self._pad = (left, len(values) - left - in_channels)  # the dense option-A layout: plain F.pad
        else:
            self._pad = None
        self.register_buffer("gather", torch.where(self.source < 0, in_channels, self.source), persistent=False)

    @property
    def out_channels(self) -> int:
        return int(self.source.numel())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``x`` strided and mapped to ``out_channels`` channels (missing ones are zero)."""
        if self.stride != 1:
            x = x[:, :, :: self.stride, :: self.stride]
        if self._pad is not None:
            return F.pad(x, (0, 0, 0, 0, *self._pad)) if any(self._pad) else x
        return F.pad(x, (0, 0, 0, 0, 0, 1)).index_select(1, self.gather)

    def extra_repr(self) -> str:
        """Show stride and widths in the module repr."""
        return f"stride={self.stride}, in_channels={self.in_channels}, out_channels={self.out_channels}"


class BasicBlock(nn.Module):
    """Two 3x3 convs with an inner width `inner_planes` and an option-A residual shortcut."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1, inner_planes: int | None = None) -> None:
        super().__init__()
        inner = planes if inner_planes is None else inner_planes
        self.conv1 = nn.Conv2d(in_planes, inner, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(inner)
        self.conv2 = nn.Conv2d(inner, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        changes_shape = stride != 1 or in_planes != planes
        self.shortcut = PadShortcut(stride, in_planes, planes) if changes_shape else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Run conv-bn-relu-conv-bn, add the shortcut, apply ReLU."""
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


def _check_depth(depth: int) -> int:
    """Return blocks per stage for a CIFAR ResNet depth (6n+2), or raise ValueError."""
    if depth < 8 or (depth - 2) % 6:
        raise ValueError(f"CIFAR ResNet depth must be 6n+2 with n >= 1 (20, 32, 44, 56, ...), got {depth}")
    return (depth - 2) // 6


def _check_widths(values: Sequence[int], count: int, what: str) -> list[int]:
    """Return `values` as a list of `count` positive ints, or raise ValueError."""
    values = list(values)
    if len(values) != count:
        raise ValueError(f"{what} needs {count} entries, got {len(values)}")
    if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in values):
        raise ValueError(f"{what} must be positive ints, got {values}")
    return values


class CifarResNet(nn.Module):
    """ResNet-(6n+2) for 32x32 inputs; `inner_widths` sets each block's conv1-out/conv2-in width."""

    def __init__(
        self,
        depth: int = 20,
        num_classes: int = 10,
        widths: Sequence[int] = (16, 32, 64),
        inner_widths: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        n = _check_depth(depth)
        widths = _check_widths(widths, 3, "widths")
        default_inner = [w for w in widths for _ in range(n)]
        inner = default_inner if inner_widths is None else _check_widths(inner_widths, 3 * n, "inner_widths")
        self.depth = depth
        self.widths = tuple(widths)

        self.conv1 = nn.Conv2d(3, widths[0], 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        in_planes = widths[0]
        stages = []
        for stage, planes in enumerate(widths):
            blocks = []
            for i in range(n):
                stride = 2 if stage > 0 and i == 0 else 1
                blocks.append(BasicBlock(in_planes, planes, stride, inner[stage * n + i]))
                in_planes = planes
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = stages
        self.linear = nn.Linear(widths[2], num_classes)
        self.apply(_kaiming_init)

    def blocks(self) -> list[BasicBlock]:
        """Return all residual blocks in forward order."""
        return [b for layer in (self.layer1, self.layer2, self.layer3) for b in layer]

    def block_inner_widths(self) -> list[int]:
        """Return the current inner width of every block (reflects pruning)."""
        return [b.conv1.out_channels for b in self.blocks()]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map a (N, 3, H, W) batch to (N, num_classes) logits."""
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.linear(out)


def _kaiming_init(m: nn.Module) -> None:
    """Kaiming-normal init for conv and linear weights, as in the reference implementation."""
    if isinstance(m, (nn.Conv2d, nn.Linear)):
        nn.init.kaiming_normal_(m.weight)


def resnet20(**kwargs) -> CifarResNet:
    """Build a CIFAR ResNet-20."""
    return CifarResNet(depth=20, **kwargs)


def resnet32(**kwargs) -> CifarResNet:
    """Build a CIFAR ResNet-32."""
    return CifarResNet(depth=32, **kwargs)


def resnet44(**kwargs) -> CifarResNet:
    """Build a CIFAR ResNet-44."""
    return CifarResNet(depth=44, **kwargs)


def resnet56(**kwargs) -> CifarResNet:
    """Build a CIFAR ResNet-56."""
    return CifarResNet(depth=56, **kwargs)
