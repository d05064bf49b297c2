"""A gradient-boosted multiplicative residual on top of the linear platform fit, stored as JSON (never pickled)."""
from __future__ import annotations

import numpy as np
import sklearn
from sklearn.ensemble import HistGradientBoostingRegressor
from threadpoolctl import threadpool_limits

PARAMS = {"max_iter": 200, "learning_rate": 0.05, "max_leaf_nodes": 15, "min_samples_leaf": 8,
          "l2_regularization": 1.0}


class ResidualBooster:
    """log(measured / linear prediction), learned from the same features by HistGradientBoostingRegressor.

    The fitted trees are kept as plain arrays (feature, threshold, children, leaf value), so the JSON form needs no
    pickle and prediction is a few numpy steps, independent of the scikit-learn version that fitted it.
    """

    def __init__(self, seed: int = 0):
        self.seed = seed

    def fit(self, X: np.ndarray, y: np.ndarray, base: np.ndarray) -> "ResidualBooster":
        target = np.log(y / np.maximum(base, 0.25 * y.min()))
        # One OpenMP thread: a few hundred rows gain nothing from more, and on a busy CPU spinning workers
        # slowed a fit from a second to minutes.
        with threadpool_limits(1, user_api="openmp"):
            hgb = HistGradientBoostingRegressor(random_state=self.seed, **PARAMS).fit(np.asarray(X, float), target)
        # sklearn exposes no public tree export: read its fitted predictors once, here.
        self.baseline_ = float(np.ravel(hgb._baseline_prediction)[0])
        self.trees_ = [{k: p.nodes[k].tolist() for k in ("feature_idx", "num_threshold", "left", "right",
                                                           "is_leaf", "value", "missing_go_to_left")}
                       for (p,) in hgb._predictors]
        self.fitted_with_ = sklearn.__version__
        return self

    def raw(self, X: np.ndarray) -> np.ndarray:
        """The learned log-correction of each row (plain-Python tree walks: ~0.3 ms a row, no start-up cost)."""
        out = []
        for x in np.asarray(X, dtype=float).tolist():
            total = self.baseline_
            for t in self.trees_:
                node = 0
                while not t["is_leaf"][node]:
                    v = x[t["feature_idx"][node]]
                    go_left = t["missing_go_to_left"][node] if v != v else v <= t["num_threshold"][node]
                    node = t["left"][node] if go_left else t["right"][node]
                total += t["value"][node]
            out.append(total)
        return np.array(out)

    def apply(self, X: np.ndarray, base: np.ndarray) -> np.ndarray:
        """``base`` times the learned correction."""
        return base * np.exp(self.raw(X))

    def to_dict(self) -> dict:
        return {"params": PARAMS, "seed": self.seed, "fitted_with_sklearn": self.fitted_with_,
                "baseline": self.baseline_, "trees": self.trees_}

    @classmethod
    def from_dict(cls, d: dict) -> "ResidualBooster":
        model = cls(d["seed"])
        model.baseline_, model.trees_, model.fitted_with_ = float(d["baseline"]), d["trees"], d["fitted_with_sklearn"]
        return model
