"""Per-layer bilinear cost regression (ECC), fitted robustly in relative error, with a per-device feature search."""
from __future__ import annotations

import hashlib

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.model_selection import KFold
from sklearn.utils.validation import check_is_fitted

from edgeprune.costmodel.features import FeatureSpec, candidate_specs
from edgeprune.costmodel.nonneg import nonneg_ridge

_SPEC_CACHE: dict[str, tuple[FeatureSpec, dict]] = {}  # samples digest → (spec, report), oldest first


def _huber_weights(rel_resid: np.ndarray, k: float) -> np.ndarray:
    """IRLS weights: 1 inside k robust standard deviations, k·s/|r| outside (timing outliers lose pull)."""
    scale = 1.4826 * np.median(np.abs(rel_resid)) + 1e-12
    r = np.abs(rel_resid) / scale
    return np.where(r <= k, 1.0, k / np.maximum(r, 1e-12))


class BilinearLayerModel(RegressorMixin, BaseEstimator):
    """cost(c_in, c_out) = a·P(c_in)·P(c_out) + b·P(c_in) + c·P(c_out) + d, per kernel regime.

    Fitted by non-negative ridge least squares on relative error (weights 1/y²) with Huber reweighting, because
    timings have occasional slow outliers and the pruning engine cares about percent, not absolute, error; with
    every coefficient ≥ 0 a layer never gets cheaper as it gets wider.
    """

    def __init__(self, block_in: int = 1, block_out: int = 1, align_in: int = 1, align_out: int = 1,
                 alpha: float = 1e-6, huber_k: float = 2.0, n_iter: int = 4):
        self.block_in = block_in
        self.block_out = block_out
        self.align_in = align_in
        self.align_out = align_out
        self.alpha = alpha
        self.huber_k = huber_k
        self.n_iter = n_iter

    @property
    def spec(self) -> FeatureSpec:
        return FeatureSpec(self.block_in, self.block_out, self.align_in, self.align_out)

    def fit(self, X, y) -> "BilinearLayerModel":
        X = np.asarray(X, dtype=float)
        y = np.asarray(y, dtype=float)
        if X.ndim != 2 or X.shape[1] != 2 or len(X) != len(y) or len(y) == 0:
            raise ValueError(f"X must be (n, 2) of (c_in, c_out) with n = len(y) > 0; got {X.shape}, {y.shape}")
        if np.any(y <= 0):
            raise ValueError("costs must be positive to fit in relative error")
        F = self.spec.transform(X)
        weights = 1.0 / y**2
        for _ in range(max(1, self.n_iter)):
            # Non-negative: the cost never falls as a count grows (the penalty is unit-free, a tie-breaker).
            coef = nonneg_ridge(F, y, weights, self.alpha)
            weights = _huber_weights((F @ coef - y) / y, self.huber_k) / y**2
        self.coef_ = coef
        self.n_features_in_ = 2
        self.n_samples_ = int(len(y))
        return self

    def predict(self, X) -> np.ndarray:
        check_is_fitted(self, "coef_")
        return self.spec.transform(X) @ self.coef_

    def to_dict(self) -> dict:
        return {"spec": self.spec.to_dict(), "coef": [float(c) for c in self.coef_], "n_samples": self.n_samples_}

    @classmethod
    def from_dict(cls, d: dict) -> "BilinearLayerModel":
        model = cls(**d["spec"])
        model.coef_ = np.asarray(d["coef"], dtype=float)
        model.n_features_in_ = 2
        model.n_samples_ = int(d.get("n_samples", 0))
        return model


def _cv_errors(spec: FeatureSpec, X: np.ndarray, y: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """Held-out relative errors of a non-negative weighted least-squares fit (fast enough to search many specs)."""
    F = spec.transform(X)
    errs = []
    for train, test in KFold(folds, shuffle=True, random_state=seed).split(X):
        coef = nonneg_ridge(F[train], y[train], 1.0 / y[train] ** 2, 1e-6)
        errs.append(np.abs(F[test] @ coef - y[test]) / y[test])
    return np.concatenate(errs)


def _digest(samples: dict, *settings) -> str:
    h = hashlib.sha256(repr(settings).encode())
    for key in sorted(samples):
        h.update(key.encode())
        h.update(np.ascontiguousarray(samples[key].X, dtype=float).tobytes())
        h.update(np.ascontiguousarray(samples[key].y, dtype=float).tobytes())
    return h.hexdigest()


def select_spec(samples: dict, folds: int = 5, seed: int = 0, min_points: int = 12) -> tuple[FeatureSpec, dict]:
    """The padding/alignment spec with the lowest cross-validated error over all signatures of a device (a search
    of seconds: a fit's held-out candidates and its final model reuse the answer for the same samples)."""
    key = _digest(samples, folds, seed, min_points)
    if key not in _SPEC_CACHE:
        if len(_SPEC_CACHE) >= 16:
            _SPEC_CACHE.pop(next(iter(_SPEC_CACHE)))
        _SPEC_CACHE[key] = _search_spec(samples, folds, seed, min_points)
    spec, report = _SPEC_CACHE[key]
    return spec, dict(report)


def _search_spec(samples: dict, folds: int, seed: int, min_points: int) -> tuple[FeatureSpec, dict]:
    usable = [(s.X, s.y) for s in samples.values() if len(s.y) >= min_points]
    if not usable:
        return FeatureSpec(), {"reason": f"no signature has >= {min_points} points; plain bilinear used"}
    scores = {}
    for spec in candidate_specs():
        errs = np.concatenate([_cv_errors(spec, X, y, folds, seed) for X, y in usable])
        # Mean of errors capped at 50 %: rewards the typical case without letting one outlier decide.
        scores[spec] = float(np.mean(np.minimum(errs, 0.5)))
    best = min(scores, key=lambda s: (scores[s], s.n_features, s.block_in + s.block_out))
    plain = scores[FeatureSpec()]
    return best, {"cv_error": scores[best], "cv_error_plain_bilinear": plain, "signatures_used": len(usable)}


def fit_layer_models(samples: dict, spec: FeatureSpec | None = None) -> tuple[FeatureSpec, dict, dict]:
    """Fit one bilinear model per signature; returns (spec, models by signature key, selection report)."""
    report = {}
    if spec is None:
        spec, report = select_spec(samples)
    models = {key: BilinearLayerModel(**spec.to_dict()).fit(s.X, s.y) for key, s in samples.items()}
    return spec, models, report
