"""Settings of the joint layer + channel pruning method."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class JointSettings:
    """Polarization (λ, t, a), sparse-training length, histogram bin width and how many blocks may go."""

    # λ: larger than from-scratch training uses (~1e-4): sparse training here is a few epochs
    lam: float = field(default=5e-3, metadata={"option": "--polar-lambda",
                                                "help": "Weight λ of the polarization regularizer."})
    t: float = field(default=1.2, metadata={"option": "--polar-t", "help": "t in t·|γ| − |γ − mean γ|."})
    a: float = field(default=1.0, metadata={"option": "--polar-a", "help": "Clamp γ to [0, a]."})
    sparse_epochs: int = field(default=2, metadata={  # 0: skip sparse training (the weights are already sparse)
        "option": "--sparse-epochs", "help": "Epochs of polarization sparse training."})
    lr: float = 0.01
    bin_width: float = field(default=0.01, metadata={"option": "--bin-width",
                                                      "help": "γ histogram bin width for the thresholds."})
    max_blocks: int | None = field(default=None, metadata={  # None: any removable block may go; 0: channels only
        "option": "--max-blocks", "help": "Remove at most N residual blocks (0: channels only; default: as many "
        "as pay off)."})
    min_width: int = 1
    max_steps_per_epoch: int | None = None
    histogram_png: str | None = field(default=None, metadata={
        "option": "--gamma-histograms", "help": "Draw every layer's γ histogram and threshold into this PNG."})

    def __post_init__(self):
        if not (self.lam >= 0 and self.t > 0 and self.a > 0 and self.bin_width > 0 and self.lr > 0):
            raise ValueError(f"joint settings need lam >= 0 and t, a, bin_width, lr > 0; got lam={self.lam}, "
                             f"t={self.t}, a={self.a}, bin_width={self.bin_width}, lr={self.lr}")
        if self.sparse_epochs < 0 or self.min_width < 1 or (self.max_blocks is not None and self.max_blocks < 0):
            raise ValueError(f"joint settings need sparse_epochs >= 0, min_width >= 1 and max_blocks >= 0 (or "
                             f"None); got {self.sparse_epochs}, {self.min_width}, {self.max_blocks}")
