"""A gradient-boosted multiplicative residual on top of the linear platform fit, stored as JSON (never pickled)."""
from __future__ import annotations

import numpy as np
import sklearn
from sklearn.ensemble import HistGradientBoostingRegressor

PARAMS = {"max_iter": 200, "learning_rate": 0.05, "max_leaf_nodes": 15, "min_samples_leaf": 8,
          "l2_regularization": 1.0}


class ResidualBooster:
    """log(measured / linear prediction) learned from the same features by HistGradientBoostingRegressor.

    Its JSON form keeps the training rows and parameters; loading refits (deterministic for a fixed seed and
    scikit-learn version) and checks the refit against predictions stored at save time.
    """

    def __init__(self, seed: int = 0):
        self.seed = seed

    def fit(self, X: np.ndarray, y: np.ndarray, base: np.ndarray) -> "ResidualBooster":
        self.X_ = np.asarray(X, dtype=float)
        self.target_ = np.log(y / np.maximum(base, 0.25 * y.min()))
        self.hgb_ = HistGradientBoostingRegressor(random_state=self.seed, **PARAMS).fit(self.X_, self.target_)
        return self

    def apply(self, X: np.ndarray, base: np.ndarray) -> np.ndarray:
        """``base`` times the learned correction."""
        return base * np.exp(self.hgb_.predict(np.asarray(X, dtype=float)))

    def to_dict(self) -> dict:
        return {"params": PARAMS, "seed": self.seed, "sklearn": sklearn.__version__, "X": self.X_.tolist(),
                "target": self.target_.tolist(), "check": self.hgb_.predict(self.X_[:8]).tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> "ResidualBooster":
        model = cls(d["seed"])
        model.X_, model.target_ = np.asarray(d["X"], dtype=float), np.asarray(d["target"], dtype=float)
        model.hgb_ = HistGradientBoostingRegressor(random_state=model.seed, **d["params"]).fit(model.X_, model.target_)
        if not np.allclose(model.hgb_.predict(model.X_[:8]), d["check"], rtol=1e-6, atol=1e-9):
            raise ValueError(f"the residual model does not refit identically (saved with scikit-learn {d['sklearn']}, "
                             f"this is {sklearn.__version__}); refit the platform model")
        return model
