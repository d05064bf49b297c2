"""A cross-architecture "platform model": per-op-kind cost terms of the graph the runtime runs, fitted robustly."""
from __future__ import annotations

import re

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.model_selection import KFold, StratifiedKFold
from sklearn.utils.validation import check_is_fitted

from edgeprune.costmodel.nonneg import nonneg_ridge
from edgeprune.costmodel.residual import ResidualBooster

ALPHAS = tuple(float(a) for a in np.logspace(-7, -1, 7))
HUBER_K = 1.345
IRLS_STEPS = 6
WEIGHT_FLOOR = 0.1  # networks cheaper than this share of the median weigh as if they cost that much
FOLDS = 5
CAP = 0.5  # CV scores cap each error at 50 %: one wild miss must not decide
# Per-kind node counts are shrunk this much harder than other terms: per-node overhead is mostly shared, and
# free per-kind counts swapped cost between training draws (5-fold CV on 200 networks, seeds 0-3: docs/benchmarks.md).
COUNT_PULL = 3.0
TIED = re.compile(r"conv_(\w+)_(?:plain|nchwc)\.macs$")  # one MAC cost per conv kind, whichever layout runs it


def _huber(rel: np.ndarray) -> np.ndarray:
    scale = 1.4826 * np.median(np.abs(rel)) + 1e-9
    r = np.abs(rel) / scale
    return np.where(r <= HUBER_K, 1.0, HUBER_K / np.maximum(r, 1e-12))


def nn_relative_fit(X: np.ndarray, y: np.ndarray, alpha: float, huber: bool = True,
                    penalty: np.ndarray | None = None) -> np.ndarray:
    """θ ≥ 0 minimising Σ w·((Xθ − y)/max(y, floor))² + α·n‖diag(penalty)·θ‖² on max-scaled columns
    (Huber-reweighted); ``penalty`` multiplies each column's shrinkage (0: not shrunk; default 1 for all)."""
    denom = np.maximum(y, WEIGHT_FLOOR * np.median(y))
    w = np.ones(len(y))
    for _ in range(IRLS_STEPS if huber else 1):
        theta = nonneg_ridge(X, y, w / denom ** 2, alpha * len(y), penalty=penalty)
        w = _huber((X @ theta - y) / np.maximum(y, 1e-12 * denom))
    return theta


def _parameter(column: str) -> str:
    """The fitted parameter a column's coefficient comes from (both layouts of a conv kind's MACs share one)."""
    m = TIED.match(column)
    return f"{m.group(1)}.macs" if m else column


class PlatformCostModel(BaseEstimator):
    """cost = Σ_kinds θ_kind · features(kind) + θ_0, θ ≥ 0, optionally × exp(gradient-boosted residual).

    Features come from the runtime-optimised graph (``graph_features``): per op kind its work (MACs or elements),
    bytes in/out for convolutions (ECC's bilinear form) and node counts, the network's weight elements (read once
    per inference), plus one intercept (per-call overhead). The plain and NCHWc layouts of a conv kind share one
    MAC coefficient; ``coef_`` holds one coefficient per column all the same (tied columns repeat it).
    """

    def __init__(self, residual: str = "auto", seed: int = 0):
        self.residual = residual  # "auto" (chosen by cross-validation), "none" or "hgb"
        self.seed = seed

    def _design(self) -> tuple[np.ndarray, np.ndarray]:
        """(T, penalty): the fitted parameters θ give one coefficient per column as T·θ (tied columns share a
        parameter); the shared per-node and per-call overheads go unshrunk, so an op kind never seen in training
        still pays the per-node cost, and per-kind counts are shrunk COUNT_PULL times harder."""
        names = [_parameter(c) for c in self.columns_ + ["intercept"]]
        slot = {name: j for j, name in enumerate(dict.fromkeys(names))}
        T = np.zeros((len(names), len(slot)))
        T[np.arange(len(names)), [slot[name] for name in names]] = 1.0
        penalty = np.array([0.0 if name in ("nodes", "intercept") else COUNT_PULL if name.endswith(".count") else 1.0
                            for name in slot])
        return T, penalty

    def _fit_linear(self, X: np.ndarray, y: np.ndarray, alpha: float) -> np.ndarray:
        """One coefficient per column (and the intercept), the tied ones fitted as one."""
        T, penalty = self._design()
        return T @ nn_relative_fit(X @ T, y, alpha, penalty=penalty)

    def _matrix(self, feats: list[dict]) -> np.ndarray:
        return np.array([[f.get(c, 0.0) for c in self.columns_] + [1.0] for f in feats], dtype=float)

    def fit(self, feats: list[dict[str, float]], y, groups=None, noise_cv: float | None = None) -> "PlatformCostModel":
        """Fit from per-network feature dicts and measured costs; ``groups`` (family names) steer the CV folds."""
        y = np.asarray(y, dtype=float)
        if len(y) < 5:
            raise ValueError(f"a platform model needs at least 5 measured networks, got {len(y)}")
        if np.any(~np.isfinite(y)) or np.any(y <= 0):
            raise ValueError("measured costs must be positive numbers")
        self.columns_ = sorted({k for f in feats for k, v in f.items() if v})
        X = self._matrix(feats)
        folds = self._folds(X, groups)
        scores = {a: self._cv(X, y, folds, a, None) for a in ALPHAS}
        self.alpha_ = min(scores, key=lambda a: (scores[a], -a))
        self.coef_ = self._fit_linear(X, y, self.alpha_)
        self.floor_ = 0.25 * float(y.min())
        report = {"alpha": self.alpha_, "cv_error_linear": scores[self.alpha_], "cv_folds": self._fold_text,
                  "n_networks": int(len(y)), "n_columns": len(self.columns_) + 1}
        self.booster_ = None
        if self.residual != "none":
            booster_cv = self._cv(X, y, folds, self.alpha_, self.seed)
            report["cv_error_with_residual"] = booster_cv
            if self.residual == "hgb" or booster_cv < scores[self.alpha_]:
                self.booster_ = ResidualBooster(self.seed).fit(X, y, X @ self.coef_)
        report["residual"] = "hgb" if self.booster_ is not None else "none"
        report["warnings"] = self._warnings(X, y, noise_cv)
        self.report_ = report
        return self

    def _folds(self, X: np.ndarray, groups) -> list[tuple[np.ndarray, np.ndarray]]:
        k = min(FOLDS, len(X))
        if groups is not None and min(list(groups).count(g) for g in set(groups)) >= k:
            self._fold_text = f"{k}-fold, stratified by family"
            return list(StratifiedKFold(k, shuffle=True, random_state=0).split(X, list(groups)))
        self._fold_text = f"{k}-fold"
        return list(KFold(k, shuffle=True, random_state=0).split(X))

    def _cv(self, X, y, folds, alpha: float, booster_seed: int | None) -> float:
        errs = []
        for tr, te in folds:
            theta = self._fit_linear(X[tr], y[tr], alpha)
            pred = X[te] @ theta
            if booster_seed is not None:
                pred = ResidualBooster(booster_seed).fit(X[tr], y[tr], X[tr] @ theta).apply(X[te], pred)
            errs.append(np.abs(np.maximum(pred, 0.25 * y[tr].min()) - y[te]) / y[te])
        return float(np.mean(np.minimum(np.concatenate(errs), CAP)))

    def _warnings(self, X: np.ndarray, y: np.ndarray, noise_cv: float | None) -> list[str]:
        out = []
        if self.alpha_ in (ALPHAS[0], ALPHAS[-1]):
            out.append(f"the ridge strength chosen by cross-validation ({self.alpha_:g}) is at the edge of the grid "
                       f"[{ALPHAS[0]:g}, {ALPHAS[-1]:g}]: the fit may be under- or over-regularised")
        present = (X[:, :-1] > 0).mean(axis=0)
        for j, col in enumerate(self.columns_):
            if self.coef_[j] == 0 and present[j] >= 0.2 and col.startswith("conv_") and col.endswith(".macs"):
                out.append(f"{col} is pinned at zero although {present[j]:.0%} of the training networks run it: "
                           "its compute is priced by other terms (add networks that vary it)")
        low = y < 0.01 * np.median(y)
        if low.any():
            out.append(f"{int(low.sum())} training network(s) cost below 1 % of the median ({np.median(y):.4g}): "
                       "check their measurements")
        spread = float(np.std(y) / np.mean(y))
        if noise_cv is not None and spread < noise_cv:
            out.append(f"the training costs spread by {spread:.1%}, less than the measurement noise ({noise_cv:.1%}): "
                       "the fit cannot tell the networks apart")
        return out

    def predict(self, feats: list[dict[str, float]]) -> np.ndarray:
        """Predicted cost of each network from its graph features (op kinds never seen in training cost 0)."""
        check_is_fitted(self, "coef_")
        X = self._matrix(feats)
        pred = X @ self.coef_
        if self.booster_ is not None:
            pred = self.booster_.apply(X, pred)
        return np.maximum(pred, self.floor_)

    def conv_terms(self, kind: str) -> np.ndarray:
        """[θ_macs, θ_in, θ_out, θ_count] of a conv kind: ECC's bilinear coefficients for the per-layer breakdown."""
        return np.array([self.coef_[self.columns_.index(f"{kind}.{t}")] if f"{kind}.{t}" in self.columns_ else 0.0
                         for t in ("macs", "in", "out", "count")])

    def terms(self) -> dict[str, float]:
        """Every fitted coefficient by column name (``intercept`` last)."""
        return {**dict(zip(self.columns_, map(float, self.coef_[:-1]))), "intercept": float(self.coef_[-1])}

    def to_dict(self) -> dict:
        return {"columns": self.columns_, "coef": [float(c) for c in self.coef_], "alpha": self.alpha_,
                "floor": self.floor_, "residual": self.residual, "seed": self.seed,
                "booster": None if self.booster_ is None else self.booster_.to_dict(), "report": self.report_}

    @classmethod
    def from_dict(cls, d: dict) -> "PlatformCostModel":
        model = cls(d["residual"], d["seed"])
        model.columns_, model.coef_ = list(d["columns"]), np.asarray(d["coef"], dtype=float)
        model.alpha_, model.floor_, model.report_ = d["alpha"], float(d["floor"]), d.get("report", {})
        model.booster_ = None if d.get("booster") is None else ResidualBooster.from_dict(d["booster"])
        return model
