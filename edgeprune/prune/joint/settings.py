"""Settings of the joint layer + channel pruning method."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class JointSettings:
    """Polarization (λ, t, a), sparse-training length, histogram bin width and how many blocks may go."""

    lam: float = 5e-3  # λ: larger than from-scratch training uses (~1e-4): sparse training here is a few epochs
    t: float = 1.2  # t: weight of t·|γ| against the spread term |γ − mean(γ)|
    a: float = 1.0  # γ is clamped to [0, a] after every step
    sparse_epochs: int = 2  # 0: skip sparse training (the weights are already sparse)
    lr: float = 0.01
    bin_width: float = 0.01
    max_blocks: int | None = None  # None: any removable block may go; 0: channel pruning only (network slimming)
    min_width: int = 1
    max_steps_per_epoch: int | None = None
    histogram_png: str | None = None  # where to draw every layer's γ histogram and threshold

    def __post_init__(self):
        if not (self.lam >= 0 and self.t > 0 and self.a > 0 and self.bin_width > 0 and self.lr > 0):
            raise ValueError(f"joint settings need lam >= 0 and t, a, bin_width, lr > 0; got lam={self.lam}, "
                             f"t={self.t}, a={self.a}, bin_width={self.bin_width}, lr={self.lr}")
        if self.sparse_epochs < 0 or self.min_width < 1 or (self.max_blocks is not None and self.max_blocks < 0):
            raise ValueError(f"joint settings need sparse_epochs >= 0, min_width >= 1 and max_blocks >= 0 (or "
                             f"None); got {self.sparse_epochs}, {self.min_width}, {self.max_blocks}")
