"""CIFAR ResNet (He et al. 2016, option-A shortcuts) with configurable stage and inner widths."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["BasicBlock", "CifarResNet", "resnet20", "resnet32", "resnet44", "resnet56"]


class PadShortcut(nn.Module):
    """Parameter-free option-A shortcut: subsample spatially, zero-pad channels to the branch width."""

    def __init__(self, stride: int = 1) -> None:
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor, out_channels: int) -> torch.Tensor:
        """Return `x` strided and zero-padded (half on each side) to `out_channels` channels."""
        if self.stride != 1:
            x = x[:, :, :: self.stride, :: self.stride]
        extra = out_channels - x.shape[1]
        if extra < 0:
            raise ValueError(f"shortcut has {x.shape[1]} channels but the block outputs only {out_channels}")
        if extra:
            x = F.pad(x, (0, 0, 0, 0, extra // 2, extra - extra // 2))
        return x

    def extra_repr(self) -> str:
        """Show the stride in the module repr."""
        return f"stride={self.stride}"


class BasicBlock(nn.Module):
    """Two 3x3 convs with an inner width `inner_planes` and an option-A residual shortcut."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1, inner_planes: int | None = None) -> None:
        super().__init__()
        inner = planes if inner_planes is None else inner_planes
        self.conv1 = nn.Conv2d(in_planes, inner, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(inner)
        self.conv2 = nn.Conv2d(inner, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = PadShortcut(stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Run conv-bn-relu-conv-bn, add the shortcut, apply ReLU."""
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x, out.shape[1]))


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
