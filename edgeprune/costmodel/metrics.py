"""Accuracy of a cost predictor against held-out measurements."""
from __future__ import annotations

import numpy as np
from scipy.stats import spearmanr


def accuracy_report(measured, predicted) -> dict:
    """n, share within ±5 % and ±10 %, Spearman rank correlation and median absolute % error (fractions)."""
    y = np.asarray(measured, dtype=float)
    p = np.asarray(predicted, dtype=float)
    if y.shape != p.shape or y.size == 0:
        raise ValueError(f"need equal, non-empty measured/predicted arrays, got {y.shape} and {p.shape}")
    ape = np.abs(p - y) / np.abs(y)
    rho = float(spearmanr(y, p).statistic) if y.size > 2 else float("nan")
    return {"n": int(y.size), "within_5": float(np.mean(ape <= 0.05)), "within_10": float(np.mean(ape <= 0.10)),
            "spearman": rho, "median_ape": float(np.median(ape)), "max_ape": float(ape.max())}
