"""Per-step learning-rate schedule: linear warmup, then cosine decay to a floor."""

from __future__ import annotations

import math

__all__ = ["CosineWarmup"]


class CosineWarmup:
    """LambdaLR factor: (step+1)/warmup during warmup, then cosine from 1 down to `min_ratio` at `total` steps."""

    def __init__(self, total: int, warmup: int = 0, min_ratio: float = 0.0) -> None:
        self.total, self.warmup, self.min_ratio = max(1, total), max(0, min(warmup, total)), min_ratio

    def __call__(self, step: int) -> float:
        """Factor applied to the base lr at optimizer step `step` (0-based)."""
        if step < self.warmup:
            return (step + 1) / self.warmup
        span = max(1, self.total - self.warmup)
        progress = min(1.0, (step - self.warmup) / span)
        return self.min_ratio + (1.0 - self.min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))
