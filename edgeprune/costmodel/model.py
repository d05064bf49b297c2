"""Network cost = Σ per-layer bilinear costs + offset, fitted from layer tables, whole networks, or both (ECC)."""
from __future__ import annotations

from collections.abc import Collection
from dataclasses import asdict
from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.model_selection import KFold
from sklearn.utils.validation import check_is_fitted

from edgeprune.costmodel import persist
from edgeprune.costmodel.bilinear import BilinearLayerModel, fit_layer_models
from edgeprune.costmodel.features import FeatureSpec, candidate_specs
from edgeprune.costmodel.nonneg import cv_alpha, nonneg_ridge
from edgeprune.models.layer_space import Layer, LayerSignature, LayerSpace

FORMAT = "edgeprune-cost-model"
FORMAT_VERSION = 1

SOURCES = ("layers", "network", "both")
NETWORK_FOLDS = 5
SPEC_ALPHA = 1e-3  # fixed while searching feature specs; the chosen spec's alpha is then cross-validated
FLOOR_FRACTION = 0.25


class CostModel(BaseEstimator):
    """Predicts a model's cost (latency or energy) at any per-group widths.

    ``source="layers"``: the sum of per-layer bilinear fits from single-layer micro-benchmarks plus an offset
    (the non-prunable rest: pooling, adds, per-call overhead) taken from whole-network measurements.
    ``source="network"``: ECC's way, one linear regression of whole-network costs on every layer's bilinear
    features (coefficients shared by layers of one signature), which sees fusion and runtime overheads.
    ``source="both"``: the layer sum as a prior, corrected by the network regression (ridge-shrunk to it).
    Every coefficient but the intercept is ≥ 0, so a wider structure is never predicted cheaper (up to the
    alignment regimes): a pruning search cannot find a structure the fit prices below anything it measured.
    ``spec``: the padding/alignment feature spec; None selects it by cross-validation.
    """

    def __init__(self, source: str = "both", spec: FeatureSpec | None = None):
        self.source = source
        self.spec = spec

    def fit(self, space: LayerSpace, layer_samples: dict | None = None,
            network_widths: list[dict[str, int]] | None = None, network_y=None) -> "CostModel":
        spec = self.spec
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
            self.spec_, self.spec_report_ = (spec, {}) if spec else self._select_network_spec(network_widths, y)
            # Layer fits, when the tables are there, only give `layer_costs` its per-layer breakdown (verify);
            # the prediction is the network regression's alone.
            self.layer_models_ = {} if missing else fit_layer_models(
                {k: layer_samples[k] for k in {k for _, k, _ in self.layers_}}, self.spec_)[1]
        self._fit_network(network_widths, y)
        return self

    def _select_network_spec(self, widths: list[dict[str, int]], y: np.ndarray) -> tuple[FeatureSpec, dict]:
        """The padding/alignment spec with the lowest cross-validated relative error of the network regression
        itself (the same capped mean as the layer-table search)."""
        dims = self._dims_array(widths)
        folds = KFold(min(NETWORK_FOLDS, len(y)), shuffle=True, random_state=0)
        scores = {}
        for spec in candidate_specs():
            X = np.hstack([self._features(dims, spec), np.ones((len(y), 1))])
            free = [X.shape[1] - 1]
            errs = [np.abs(X[te] @ nonneg_ridge(X[tr], y[tr], 1.0 / y[tr] ** 2, SPEC_ALPHA, free) - y[te]) / y[te]
                    for tr, te in folds.split(X)]
            scores[spec] = float(np.mean(np.minimum(np.concatenate(errs), 0.5)))
        best = min(scores, key=lambda s: (scores[s], s.n_features, s.block_in + s.block_out))
        return best, {"selected_by": f"{folds.n_splits}-fold cross-validation of the network regression",
                      "cv_error": scores[best], "cv_error_plain_bilinear": scores[FeatureSpec()]}

    def _fit_network(self, widths: list[dict[str, int]], y: np.ndarray) -> None:
        self.scale_, self.offset_, self.correction_, self.prior_scale_ = 1.0, 0.0, None, None
        self.floor_ = FLOOR_FRACTION * float(y.min()) if len(y) else 0.0
        if self.source == "layers":
            if len(y):
                self.offset_ = float(np.median(y - self._layer_sum(widths)))
            return
        phi = self._signature_features(widths)
        ones = np.ones((len(y), 1))
        if self.source == "both":
            # The layer sum is the prior: its coefficient shrinks towards 1 and the signature features' towards 0,
            # so with few variants the fit stays the layer sum (plus a fitted offset), never a constant.
            X = np.hstack([self._layer_sum(widths)[:, None], phi, ones])
            prior = np.zeros(X.shape[1])
            prior[0] = 1.0
            self.prior_scale_ = 1.0
        else:
            X, prior = np.hstack([phi, ones]), None
        free = [X.shape[1] - 1]  # the intercept: any sign, not shrunk
        alpha = cv_alpha(X, y, free, prior)
        beta = nonneg_ridge(X, y, 1.0 / y**2, alpha, free, prior)
        self.correction_ = {"coef": beta[:-1].tolist(), "intercept": float(beta[-1]), "alpha": alpha}

    def _dims(self, widths: dict[str, int], removed: Collection[str] = ()) -> list[tuple[str, str, int, int]]:
        return [(name, key, *layer.dims(widths)) for name, key, layer in self.layers_ if name not in removed]

    def _layer_sum(self, widths_list: list[dict[str, int]], removed: Collection[str] = ()) -> np.ndarray:
        return np.array([sum(self.layer_costs(w, removed).values()) for w in widths_list])

    def _dims_array(self, widths_list: list[dict[str, int]], removed: Collection[str] = ()) -> np.ndarray:
        """(variants, layers, 2) array of every kept layer's (c_in, c_out)."""
        layers = [layer for name, _, layer in self.layers_ if name not in removed]
        return np.array([[layer.dims(w) for layer in layers] for w in widths_list], dtype=float).reshape(
            len(widths_list), len(layers), 2)

    def _features(self, dims: np.ndarray, spec: FeatureSpec, removed: Collection[str] = ()) -> np.ndarray:
        """Per signature, the sum of its layers' bilinear features (``dims`` from ``_dims_array``)."""
        keys = sorted({k for _, k, _ in self.layers_})
        owner = np.array([keys.index(k) for name, k, _ in self.layers_ if name not in removed], dtype=int)
        n_var, n_layers, _ = dims.shape
        per_layer = spec.transform(dims.reshape(-1, 2)).reshape(n_var, n_layers, spec.n_features)
        out = np.zeros((n_var, len(keys), spec.n_features))
        for i in range(len(keys)):
            out[:, i] = per_layer[:, owner == i].sum(axis=1)
        return out.reshape(n_var, -1)

    def _signature_features(self, widths_list: list[dict[str, int]], removed: Collection[str] = ()) -> np.ndarray:
        return self._features(self._dims_array(widths_list, removed), self.spec_, removed)

    def check_removed(self, removed: Collection[str]) -> frozenset[str]:
        """``removed`` as a set of this model's layer names; ValueError naming any layer it does not know."""
        check_is_fitted(self, "layers_")
        removed = frozenset(removed)
        unknown = sorted(removed - {name for name, _, _ in self.layers_})
        if unknown:
            raise ValueError(f"cannot remove unknown layer(s) {unknown[:5]}; this cost model's layers are "
                             f"{[name for name, _, _ in self.layers_][:5]}...")
        return removed

    def layer_costs(self, widths: dict[str, int], removed: Collection[str] = ()) -> dict[str, float]:
        """Per-layer cost from the single-layer fits (before network-level correction), without ``removed``."""
        check_is_fitted(self, "layer_models_")
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

    def to_dict(self) -> dict:
        """The fitted state as plain JSON types (what ``from_dict`` rebuilds)."""
        check_is_fitted(self, "layers_")
        return {
            "source": self.source,
            "feature_spec": self.spec_.to_dict(), "spec_selection": self.spec_report_,
            "dense_widths": self.dense_widths_,
            "layers": [{**asdict(layer), "signature_key": key} for _, key, layer in self.layers_],
            "layer_models": {k: m.to_dict() for k, m in sorted(self.layer_models_.items())},
            "network": {"scale": self.scale_, "offset": self.offset_, "correction": self.correction_,
                        "prior_scale": self.prior_scale_, "floor": self.floor_},
        }

    @classmethod
    def from_dict(cls, d: dict) -> "CostModel":
        """A fitted CostModel from ``to_dict``'s form."""
        model = cls(d["source"])
        model.layers_ = [(item["name"], item["signature_key"],
                          Layer(item["name"], LayerSignature.from_dict(item["signature"]), item["c_in"],
                                item["c_out"], item["in_group"], item["out_group"])) for item in d["layers"]]
        model.dense_widths_ = {k: int(v) for k, v in d["dense_widths"].items()}
        model.spec_ = FeatureSpec(**d["feature_spec"])
        model.spec_report_ = d.get("spec_selection", {})
        model.layer_models_ = {k: BilinearLayerModel.from_dict(v) for k, v in d["layer_models"].items()}
        net = d["network"]
        model.scale_, model.offset_, model.prior_scale_ = net["scale"], net["offset"], net["prior_scale"]
        model.correction_ = net["correction"]
        model.floor_ = float(net.get("floor", 0.0))
        return model

    def save(self, path: str | Path, provenance: dict) -> Path:
        """Write this model and where it came from (device, runtime, table, fit metrics) as versioned JSON."""
        return persist.write_versioned(path, FORMAT, FORMAT_VERSION, {**provenance, **self.to_dict()})

    @classmethod
    def load(cls, path: str | Path, architecture_hash: str | None = None,
             fingerprint_id: str | None = None) -> tuple["CostModel", dict]:
        """(model, its file) from ``path``; CostModelError for a file fitted for another architecture or device."""
        path = Path(path)
        d = persist.read_versioned(path, FORMAT, FORMAT_VERSION, "cost model", "edgeprune fit")
        persist.check_provenance(path, d, architecture_hash, fingerprint_id)
        try:
            return cls.from_dict(d), d
        except (KeyError, TypeError, ValueError) as exc:
            raise persist.CostModelError(f"{path} is incomplete or damaged ({type(exc).__name__}: {exc})") from exc
