"""Per-layer adaptive threshold: the first valley of the histogram of a layer's γ, scanning from 0 upwards."""
from __future__ import annotations

import numpy as np


def histogram(gamma: np.ndarray, bin_width: float) -> np.ndarray:
    """Counts of |γ| in bins [k·w, (k+1)·w) from 0 up to the bin holding the largest value."""
    if bin_width <= 0:
        raise ValueError(f"bin width must be positive, got {bin_width}")
    g = np.abs(np.asarray(gamma, dtype=float))
    if g.size == 0:
        raise ValueError("cannot threshold a layer without scaling factors")
    index = np.floor(g / bin_width + 1e-9).astype(int)
    return np.bincount(index, minlength=int(index.max()) + 1)


def histogram_threshold(gamma: np.ndarray, bin_width: float = 0.01) -> float | None:
    """The γ value at the first local minimum of the histogram (the middle of the valley when it spans equal
    bins), scanning bins left to right; None when the counts never fall and then rise again."""
    counts = histogram(gamma, bin_width)
    i = 1
    while i < len(counts):
        if counts[i] >= counts[i - 1]:
            i += 1
            continue
        end = i  # the valley may be a run of equal counts
        while end + 1 < len(counts) and counts[end + 1] == counts[i]:
            end += 1
        if end + 1 < len(counts) and counts[end + 1] > counts[i]:
            return (i + end + 1) / 2 * bin_width
        i = end + 1
    return None


def sparsity(gamma: np.ndarray, threshold: float) -> float:
    """Share of a layer's channels whose |γ| lies below its threshold."""
    return float(np.mean(np.abs(np.asarray(gamma, dtype=float)) < threshold))
