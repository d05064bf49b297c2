"""Ridge least squares with non-negative coefficients: a fitted cost never falls as a channel count grows.

Every cost feature (c_in·c_out, c_in, c_out, a layer's count, the per-layer prior) grows with the widths, so
coefficients ≥ 0 make the prediction monotone. Without that, a fit on a few dozen random variants can price some
narrow structure far below anything it measured, and a pruning search finds exactly that structure.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.optimize import nnls
from sklearn.model_selection import KFold

ALPHAS = np.logspace(-6, 3, 19)


def nonneg_ridge(X: np.ndarray, y: np.ndarray, weights: np.ndarray, alpha: float, free: Sequence[int] = (),
                 prior: np.ndarray | None = None, penalty: np.ndarray | None = None) -> np.ndarray:
    """argmin Σ wᵢ(Xβ − y)ᵢ² + α Σⱼ pⱼ²(sⱼβⱼ − sⱼpriorⱼ)² over β ≥ 0, except the ``free`` columns (any sign, not
    shrunk); sⱼ is column j's largest magnitude, so α is unit-free; pⱼ is ``penalty`` (default 1 for all)."""
    X, y = np.asarray(X, dtype=float), np.asarray(y, dtype=float)
    n, k = X.shape
    scale = np.maximum(np.abs(X).max(axis=0), 1e-12)
    prior = np.zeros(k) if prior is None else np.asarray(prior, dtype=float)
    free = sorted(set(free))
    shrunk = [j for j in range(k) if j not in free]
    root_w = np.sqrt(np.asarray(weights, dtype=float))[:, None]
    Xs = X / scale
    # A free column enters twice, as +x and −x, both non-negative: their difference takes any sign.
    design = np.hstack([Xs, -Xs[:, free]]) * root_w
    strength = np.sqrt(alpha) * (np.ones(k) if penalty is None else np.asarray(penalty, dtype=float))[shrunk]
    rows = np.zeros((len(shrunk), design.shape[1]))
    rows[np.arange(len(shrunk)), shrunk] = strength
    b = np.concatenate([y * root_w[:, 0], strength * (prior * scale)[shrunk]])
    solution = nnls(np.vstack([design, rows]), b, maxiter=50 * design.shape[1])[0]
    beta = solution[:k].copy()
    beta[free] -= solution[k:]
    return beta / scale


def cv_alpha(X: np.ndarray, y: np.ndarray, free: Sequence[int] = (), prior: np.ndarray | None = None,
             folds: int = 5) -> float:
    """The alpha of ALPHAS with the lowest cross-validated mean relative error (weights 1/y²)."""
    splits = list(KFold(min(folds, len(y)), shuffle=True, random_state=0).split(X))
    errors = []
    for alpha in ALPHAS:
        errs = [np.abs(X[te] @ nonneg_ridge(X[tr], y[tr], 1.0 / y[tr] ** 2, alpha, free, prior) - y[te]) / y[te]
                for tr, te in splits]
        errors.append(float(np.mean(np.concatenate(errs))))
    return float(ALPHAS[int(np.argmin(errors))])
