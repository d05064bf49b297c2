"""Draw every layer's γ histogram with its threshold into one PNG, for inspection."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from edgeprune.errors import EdgepruneError
from edgeprune.files import atomic_open


class PlottingUnavailable(EdgepruneError):
    """γ histograms were asked for but matplotlib is not installed."""


def pyplot():
    """matplotlib's pyplot on the Agg backend, or PlottingUnavailable saying how to install it."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise PlottingUnavailable("drawing γ histograms (--gamma-histograms) needs matplotlib: "
                                  "pip install 'edgeprune[bench]'") from exc
    return plt


def save_histograms(gammas: dict[str, np.ndarray], thresholds: dict[str, float], bin_width: float,
                    path: str | Path) -> Path:
    """One small panel per BN layer: histogram of |γ| (bins of ``bin_width``) and its threshold as a red line."""
    plt = pyplot()
    cols = min(6, len(gammas))
    rows = math.ceil(len(gammas) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 1.9 * rows), squeeze=False)
    for ax, (name, g) in zip(axes.flat, gammas.items()):
        edges = np.arange(0.0, float(g.max()) + 2 * bin_width, bin_width)
        ax.hist(g, bins=edges, color="tab:blue")
        ax.axvline(thresholds[name], color="tab:red", linewidth=1)
        ax.set_title(name, fontsize=7)
        ax.tick_params(labelsize=6)
    for ax in list(axes.flat)[len(gammas):]:
        ax.axis("off")
    fig.tight_layout()
    path = Path(path)
    with atomic_open(path, durable=False) as f:  # a diagnostic picture: no fsync
        fig.savefig(f, format="png", dpi=90)
    plt.close(fig)
    return path
