"""A cross-architecture "platform model": coefficients shared per op type, scaled by each layer's shape."""
from __future__ import annotations

import numpy as np
import torch.nn as nn
from sklearn.base import BaseEstimator
from sklearn.linear_model import RidgeCV

from edgeprune.costmodel.features import FeatureSpec, pad
from edgeprune.costmodel.macs import output_hw
from edgeprune.models.layer_space import LayerSpace, build_layer_space

OPS = ("conv", "dwconv", "linear")
ALPHAS = np.logspace(-8, 2, 21)


def layer_features(spec: FeatureSpec, op: str, sig, c_in: int, c_out: int) -> np.ndarray:
    """[padded MACs, input elements, output elements, 1] of one layer, split by kernel regime when the spec does."""
    pi, po = float(pad(c_in, spec.block_in)), float(pad(c_out, spec.block_out))
    if op == "linear":
        base = np.array([pi * po, pi, po, 1.0])
    else:
        ho, wo = output_hw(sig)
        area, k = sig.in_hw[0] * sig.in_hw[1], sig.kernel[0] * sig.kernel[1]
        macs = (po if op == "dwconv" else pi * po / sig.groups) * k * ho * wo
        base = np.array([macs, pi * area, po * ho * wo, 1.0])
    if not spec.split:
        return base
    return np.concatenate([base, base * spec.unaligned(np.array([[c_in, c_out]]))[0]])


class PlatformCostModel(BaseEstimator):
    """cost(network) = Σ_layers θ_op · features(layer) + intercept, with θ shared by every layer of an op type.

    Fitted from whole-network measurements of many models (and widths), it predicts models it has never seen,
    because it only depends on layer shapes, not on layer identities.
    """

    def __init__(self, spec: FeatureSpec | None = None):
        self.spec = spec

    def _spec(self) -> FeatureSpec:
        return self.spec or FeatureSpec()

    def features(self, space: LayerSpace, widths: dict[str, int] | None = None) -> np.ndarray:
        """Per-op-type sums of layer features for one network at ``widths``."""
        spec, widths = self._spec(), widths or {}
        n = spec.n_features
        out = np.zeros(len(OPS) * n)
        for layer in space.layers:
            op = layer.signature.op
            i = OPS.index(op) * n
            out[i:i + n] += layer_features(spec, op, layer.signature, *layer.dims(widths))
        return out

    def fit_spaces(self, items: list[tuple[LayerSpace, dict[str, int], float]]) -> "PlatformCostModel":
        """Fit from (layer space, widths, measured cost) triples."""
        if len(items) < 3:
            raise ValueError(f"a platform model needs at least 3 measured networks, got {len(items)}")
        X = np.array([self.features(space, w) for space, w, _ in items])
        y = np.array([cost for _, _, cost in items], dtype=float)
        self.col_scale_ = np.maximum(np.abs(X).max(axis=0), 1e-12)
        self.ridge_ = RidgeCV(alphas=ALPHAS).fit(X / self.col_scale_, y, sample_weight=1.0 / y**2)
        self.n_networks_ = len(items)
        return self

    def fit(self, items: list[tuple[nn.Module, tuple[int, ...], float]]) -> "PlatformCostModel":
        """Fit from (model, input shape, measured cost) triples — models as they are, pruned or not."""
        return self.fit_spaces([(build_layer_space(m, shape), {}, cost) for m, shape, cost in items])

    def predict_spaces(self, items: list[tuple[LayerSpace, dict[str, int]]]) -> np.ndarray:
        X = np.array([self.features(space, w) for space, w in items])
        return self.ridge_.predict(X / self.col_scale_)

    def predict(self, items: list[tuple[nn.Module, tuple[int, ...]]]) -> np.ndarray:
        """Predicted cost of each (model, input shape)."""
        return self.predict_spaces([(build_layer_space(m, shape), {}) for m, shape in items])
