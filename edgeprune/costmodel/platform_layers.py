"""The platform model as a per-architecture CostModel: ECC's bilinear layer terms, so pruning can use it."""
from __future__ import annotations

from dataclasses import asdict

import numpy as np

from edgeprune.costmodel.bilinear import BilinearLayerModel
from edgeprune.costmodel.features import FeatureSpec
from edgeprune.costmodel.macs import output_hw
from edgeprune.costmodel.model import CostModel
from edgeprune.costmodel.platform import PlatformCostModel
from edgeprune.measure.graph_features import WEIGHTS
from edgeprune.models.layer_space import LayerSignature, LayerSpace

# onnxruntime's NCHWc layout needs input channels on its SIMD block (16 with AVX-512, 8 with AVX2); other
# convolutions run in the plain kernel. The split spec gives the two regimes their own coefficients.
NCHWC_BLOCK = 16


def _kind(sig: LayerSignature) -> str:
    k, s = sig.kernel[0], sig.stride[0]
    if sig.op == "dwconv":
        return f"dw{k}s{s}"
    if sig.groups > 1:
        return "group"
    return f"k{k}s{s}" if k in (1, 3) and s in (1, 2) else "kother"


def _bilinear(platform: PlatformCostModel, sig: LayerSignature, regime: str) -> np.ndarray:
    """[a, b, c, d] with cost(c_in, c_out) = a·c_in·c_out + b·c_in + c·c_out + d in one kernel regime."""
    terms = platform.terms()
    weight = terms.get(WEIGHTS, 0.0)  # per weight element read, any node kind
    if sig.op == "linear":
        return np.array([terms.get("gemm.macs", 0.0) + weight, 0.0, 0.0, terms.get("gemm.count", 0.0)])
    kind = f"conv_{_kind(sig)}_{regime}"
    t = {name: terms.get(f"{kind}.{name}", 0.0) for name in ("macs", "in", "out", "count", "groups", "im2col")}
    ho, wo = output_hw(sig)
    area_out, area_in, k2 = ho * wo, sig.in_hw[0] * sig.in_hw[1], sig.kernel[0] * sig.kernel[1]
    im2col = t["im2col"] * k2 * area_out
    if sig.op == "dwconv":  # c_in == c_out == c: every term is linear in c
        return np.array([0.0, (t["macs"] * area_out + weight) * k2 + t["groups"] + t["in"] * area_in + im2col,
                         t["out"] * area_out, t["count"]])
    g = sig.groups
    return np.array([(t["macs"] * area_out + weight) * k2 / g, t["in"] * area_in + im2col, t["out"] * area_out,
                     t["count"] + t["groups"] * g])


def platform_cost_model(platform: PlatformCostModel, space: LayerSpace, dense_features: dict) -> CostModel:
    """A layer-sourced CostModel whose per-layer bilinear terms come from the platform model's conv/gemm terms;
    everything else the graph runs (pooling, adds, reorders, overhead) is the offset at dense widths."""
    spec = FeatureSpec(1, 1, NCHWC_BLOCK, 1)
    layer_models = {}
    for layer in space.layers:
        key = layer.signature.key()
        if key not in layer_models:
            fast, slow = _bilinear(platform, layer.signature, "nchwc"), _bilinear(platform, layer.signature, "plain")
            coef = np.concatenate([fast, slow - fast])
            layer_models[key] = BilinearLayerModel.from_dict({"spec": spec.to_dict(), "coef": coef.tolist()})
    total = float(platform.predict([dense_features])[0])
    layer_sum = sum(float(layer_models[layer.signature.key()].predict(np.array([layer.dims({})]))[0])
                    for layer in space.layers)
    scale, offset = (1.0, total - layer_sum) if total >= layer_sum else (total / layer_sum, 0.0)
    return CostModel.from_dict({
        "source": "layers", "feature_spec": spec.to_dict(),
        "spec_selection": {"selected_by": f"platform model (onnxruntime NCHWc block {NCHWC_BLOCK} on input channels)"},
        "dense_widths": space.dense_widths(),
        "layers": [{**asdict(layer), "signature_key": layer.signature.key()} for layer in space.layers],
        "layer_models": {k: m.to_dict() for k, m in layer_models.items()},
        # as the table-fitted models: never predict below a small share of dense
        "network": {"scale": scale, "offset": offset, "correction": None, "prior_scale": None, "floor": 0.05 * total},
    })


def platform_cost_model_for(path, fingerprint_id: str, model_spec: str, space: LayerSpace,
                            runtime: str) -> tuple[CostModel, dict]:
    """Load the device's platform model and turn it into a CostModel for this architecture."""
    from edgeprune.costmodel import platform_persist
    from edgeprune.costmodel.platform_data import network_features

    platform, meta = platform_persist.load(path, fingerprint_id)
    dense = network_features(model_spec, {}, {}, space.input_shape, runtime)
    return platform_cost_model(platform, space, dense), meta
