"""Bilinear features of (c_in, c_out), with channel padding and kernel-regime switches learned per device."""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

BLOCKS = (1, 4, 8, 16)


def pad(c: np.ndarray, block: int) -> np.ndarray:
    """Channels rounded up to the runtime's SIMD block."""
    return np.ceil(np.asarray(c, dtype=float) / block) * block


@dataclass(frozen=True)
class FeatureSpec:
    """How channel counts enter the bilinear form.

    ``block_*`` pads a channel count to the SIMD block the runtime computes in. ``align_*`` > 1 splits the
    surface in two regimes: runtimes switch to another kernel when a count is not a multiple of it (seen with
    onnxruntime's NCHWc convolutions), so the aligned and unaligned surfaces get their own coefficients.
    """

    block_in: int = 1
    block_out: int = 1
    align_in: int = 1
    align_out: int = 1

    @property
    def n_features(self) -> int:
        return 8 if self.split else 4

    @property
    def split(self) -> bool:
        return self.align_in > 1 or self.align_out > 1

    def bilinear(self, X: np.ndarray) -> np.ndarray:
        """[P(c_in)·P(c_out), P(c_in), P(c_out), 1] per row of X = (c_in, c_out)."""
        X = np.atleast_2d(np.asarray(X, dtype=float))
        pi, po = pad(X[:, 0], self.block_in), pad(X[:, 1], self.block_out)
        return np.column_stack([pi * po, pi, po, np.ones(len(X))])

    def unaligned(self, X: np.ndarray) -> np.ndarray:
        """1.0 where a count falls off its alignment (the slower kernel regime), else 0.0."""
        X = np.atleast_2d(np.asarray(X, dtype=float))
        off = np.zeros(len(X), dtype=bool)
        if self.align_in > 1:
            off |= X[:, 0] % self.align_in != 0
        if self.align_out > 1:
            off |= X[:, 1] % self.align_out != 0
        return off.astype(float)

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Feature matrix: the bilinear terms, and (when split) the same terms again for the unaligned regime."""
        base = self.bilinear(X)
        if not self.split:
            return base
        return np.hstack([base, base * self.unaligned(X)[:, None]])

    def to_dict(self) -> dict:
        return asdict(self)


def candidate_specs() -> list[FeatureSpec]:
    """Every padding/alignment combination a device fit chooses from."""
    return [FeatureSpec(bi, bo, ai, ao) for bi in BLOCKS for bo in BLOCKS for ai in BLOCKS for ao in BLOCKS]
