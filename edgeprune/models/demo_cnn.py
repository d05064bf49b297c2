"""Small demo CNN for quick runs on 8x8 digits (1 channel) or 32x32 RGB images."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["DemoCNN", "demo_cnn"]


class DemoCNN(nn.Module):
    """conv-bn-relu x2, maxpool, conv-bn-relu, global average pool, linear."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, widths: Sequence[int] = (32, 64, 128)) -> None:
        super().__init__()
        if len(widths) != 3:
            raise ValueError(f"widths needs 3 entries, got {len(widths)}")
        w1, w2, w3 = widths
        self.conv1 = nn.Conv2d(in_channels, w1, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(w1)
        self.conv2 = nn.Conv2d(w1, w2, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(w2)
        self.conv3 = nn.Conv2d(w2, w3, 3, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(w3)
        self.linear = nn.Linear(w3, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map a (N, C, H, W) batch (H, W >= 2) to (N, num_classes) logits."""
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        x = F.max_pool2d(x, 2)
        x = F.relu(self.bn3(self.conv3(x)))
        return self.linear(F.adaptive_avg_pool2d(x, 1).flatten(1))


def demo_cnn(in_channels: int = 1, num_classes: int = 10, **kwargs) -> DemoCNN:
    """Build a DemoCNN."""
    return DemoCNN(in_channels=in_channels, num_classes=num_classes, **kwargs)
