"""Network cost = Σ per-layer bilinear costs + offset, fitted from layer tables, whole networks, or both (ECC)."""
from __future__ import annotations

from collections.abc import Collection

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.linear_model import RidgeCV

from edgeprune.costmodel.bilinear import fit_layer_models
from edgeprune.costmodel.features import FeatureSpec
from edgeprune.models.layer_space import LayerSpace

SOURCES = ("layers", "network", "both")
ALPHAS = np.logspace(-6, 3, 19)
FLOOR_FRACTION = 0.25


class CostModel(BaseEstimator):
    """Predicts a model's cost (latency or energy) at any per-group widths.

    ``source="layers"``: the sum of per-layer bilinear fits from single-layer micro-benchmarks plus an offset
    (the non-prunable rest: pooling, adds, per-call overhead) taken from whole-network measurements.
    ``source="network"``: ECC's way, one linear regression of whole-network costs on every layer's bilinear
    features (coefficients shared by layers of one signature), which sees fusion and runtime overheads.
    ``source="both"``: the layer sum as a prior, corrected by the network regression (ridge-shrunk to it).
    """

    def __init__(self, source: str = "both"):
        self.source = source

    def fit(self, space: LayerSpace, layer_samples: dict | None = None,
            network_widths: list[dict[str, int]] | None = None, network_y=None,
            spec: FeatureSpec | None = None) -> "CostModel":
        if self.source not in SOURCES:
            raise ValueError(f"source must be one of {SOURCES}, got {self.source!r}")
        self.layers_ = [(l.name, l.signature.key(), l) for l in space.layers]
        self.dense_widths_ = space.dense_widths()
        network_widths = network_widths or []
        y = np.asarray(network_y if network_y is not None else [], dtype=float)
        needs_layers = self.source in ("layers", "both")
        missing = sorted({k for _, k, _ in self.layers_} - set(layer_samples or {}))
        if needs_layers and missing:
            raise ValueError(f"no single-layer measurements for {len(missing)} signature(s), e.g. {missing[0]}; "
                             "run `edgeprune calibrate` for this model and device first")
        if self.source in ("network", "both") and len(y) < 3:
            raise ValueError(f"source={self.source!r} needs at least 3 whole-network measurements, got {len(y)}")
        if needs_layers:
            self.spec_, self.layer_models_, self.spec_report_ = fit_layer_models(
                {k: layer_samples[k] for k in {k for _, k, _ in self.layers_}}, spec)
        else:
            self.spec_, self.layer_models_, self.spec_report_ = spec or FeatureSpec(1, 16, 4, 1), {}, {}
        self._fit_network(network_widths, y)
        return self

    def _fit_network(self, widths: list[dict[str, int]], y: np.ndarray) -> None:
        self.scale_, self.offset_, self.correction_, self.prior_scale_ = 1.0, 0.0, None, None
        self.floor_ = FLOOR_FRACTION * float(y.min()) if len(y) else 0.0
        if self.source == "layers":
            if len(y):
                self.offset_ = float(np.median(y - self._layer_sum(widths)))
            return
        phi = self._signature_features(widths)
        if self.source == "both":
            prior = self._layer_sum(widths)[:, None]
            # The prior column is scaled up so the ridge penalty barely touches it; corrections get shrunk.
            self.prior_scale_ = 1e3 / max(float(prior.mean()), 1e-12)
            phi = np.hstack([prior * self.prior_scale_, phi])
        col_scale = np.maximum(np.abs(phi).max(axis=0), 1e-12)
        ridge = RidgeCV(alphas=ALPHAS, fit_intercept=True).fit(phi / col_scale, y, sample_weight=1.0 / y**2)
        self.correction_ = {"coef": (ridge.coef_ / col_scale).tolist(), "intercept": float(ridge.intercept_),
                            "alpha": float(ridge.alpha_)}

    def _dims(self, widths: dict[str, int], removed: Collection[str] = ()) -> list[tuple[str, str, int, int]]:
        return [(name, key, *layer.dims(widths)) for name, key, layer in self.layers_ if name not in removed]

    def _layer_sum(self, widths_list: list[dict[str, int]], removed: Collection[str] = ()) -> np.ndarray:
        return np.array([sum(self.layer_costs(w, removed).values()) for w in widths_list])

    def _signature_features(self, widths_list: list[dict[str, int]], removed: Collection[str] = ()) -> np.ndarray:
        keys = sorted({k for _, k, _ in self.layers_})
        index = {k: i for i, k in enumerate(keys)}
        n = self.spec_.n_features
        out = np.zeros((len(widths_list), len(keys) * n))
        for row, widths in enumerate(widths_list):
            for _, key, c_in, c_out in self._dims(widths, removed):
                i = index[key] * n
                out[row, i:i + n] += self.spec_.transform(np.array([[c_in, c_out]]))[0]
        return out

    def check_removed(self, removed: Collection[str]) -> frozenset[str]:
        """``removed`` as a set of this model's layer names; ValueError naming any layer it does not know."""
        removed = frozenset(removed)
        unknown = sorted(removed - {name for name, _, _ in self.layers_})
        if unknown:
            raise ValueError(f"cannot remove unknown layer(s) {unknown[:5]}; this cost model's layers are "
                             f"{[name for name, _, _ in self.layers_][:5]}...")
        return removed

    def layer_costs(self, widths: dict[str, int], removed: Collection[str] = ()) -> dict[str, float]:
        """Per-layer cost from the single-layer fits (before network-level correction), without ``removed``."""
        if not self.layer_models_:
            raise ValueError("this cost model was fitted from whole networks only: no per-layer breakdown")
        return {name: float(self.layer_models_[key].predict(np.array([[c_in, c_out]]))[0])
                for name, key, c_in, c_out in self._dims(widths, removed)}

    def predict(self, widths_list: list[dict[str, int]], removed: Collection[str] = ()) -> np.ndarray:
        """Predicted network cost for each width dict (missing groups stay dense); the layers named in
        ``removed`` (e.g. those of residual blocks replaced by their shortcut) contribute nothing."""
        removed = self.check_removed(removed)
        widths_list = [{**self.dense_widths_, **w} for w in widths_list]
        if self.correction_ is None:
            raw = self._layer_sum(widths_list, removed) * self.scale_ + self.offset_
        else:
            phi = self._signature_features(widths_list, removed)
            if self.source == "both":
                prior = self._layer_sum(widths_list, removed)[:, None]
                phi = np.hstack([prior * self.prior_scale_, phi])
            raw = phi @ np.asarray(self.correction_["coef"]) + self.correction_["intercept"]
        # A linear fit can extrapolate below zero far outside the measured widths; never predict less than
        # a fraction of the cheapest network that was measured.
        return np.maximum(raw, self.floor_)
