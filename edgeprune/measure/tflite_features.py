"""Cost features of a .tflite model from its op list (LiteRT interpreter), in the same kinds as the ONNX ones."""
from __future__ import annotations

import hashlib

import numpy as np

from edgeprune.measure.graph_features import WEIGHTS, GraphFeatureError, cached_spec_features, store_spec_features

ELTWISE = {"ADD", "SUB", "MUL", "DIV", "RELU", "RELU6", "LOGISTIC", "HARD_SWISH", "TANH", "MAXIMUM", "MINIMUM",
           "LEAKY_RELU", "QUANTIZE", "DEQUANTIZE"}
MOVE = {"CONCATENATION": "concat", "SPLIT": "split", "SPLIT_V": "split", "STRIDED_SLICE": "split", "SLICE": "split",
        "GATHER": "split", "PAD": "pad", "PADV2": "pad", "TRANSPOSE": "transpose"}
VIEW = {"RESHAPE", "SQUEEZE", "EXPAND_DIMS"}


def _interpreter(data: bytes):
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError as exc:
        raise GraphFeatureError("reading .tflite models needs ai-edge-litert: pip install 'edgeprune[tflite]'") from exc
    try:
        return Interpreter(model_content=data)
    except (ValueError, RuntimeError) as exc:
        raise GraphFeatureError(f"LiteRT cannot load the model: {exc}") from exc


def tflite_input_shape(data: bytes) -> tuple[int, ...]:
    """Shape of the model's first input."""
    return tuple(int(d) for d in _interpreter(data).get_input_details()[0]["shape"])


def _op(name: str, ins: list, outs: list) -> tuple[str, dict[str, float]]:
    x, out = ins[0] if ins else None, outs[0] if outs else None
    n_in, n_out = float(np.prod(x)) if x is not None else 0.0, float(np.prod(out)) if out is not None else 0.0
    if name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        w = ins[1]  # OHWI (conv) or 1HWC (depthwise); activations NHWC
        k, s = int(w[1]), max(1, round(x[1] / out[1]))
        weights = {WEIGHTS: float(np.prod(w))}
        if name == "DEPTHWISE_CONV_2D":
            return f"conv_dw{k}s{s}_tflite", {"macs": n_out * k * int(w[2]), "in": n_in, "out": n_out, **weights}
        t = f"k{k}s{s}" if k in (1, 3) and s in (1, 2) else "kother"
        return f"conv_{t}_tflite", {"macs": n_out * k * int(w[2]) * int(w[3]), "in": n_in, "out": n_out, **weights}
    if name in ("AVERAGE_POOL_2D", "MAX_POOL_2D"):
        return "pool_tflite", {"elems": n_in}
    if name in ("MEAN", "SUM", "REDUCE_MAX"):
        return "gpool", {"elems": n_in}
    if name == "FULLY_CONNECTED":
        return "gemm", {"macs": n_in * float(ins[1][0]), WEIGHTS: float(np.prod(ins[1]))}
    if name in ELTWISE:
        return "eltwise", {"elems": n_out}
    if name in MOVE:
        return MOVE[name], {"elems": max(n_in, n_out)}
    if name in VIEW:
        return "view", {}
    return "other", {"elems": n_out}


def tflite_features(data: bytes) -> dict[str, float]:
    """Per-op-kind feature sums of a .tflite model (cached per model digest)."""
    key = "tflite|" + hashlib.sha256(data).hexdigest()
    cached = cached_spec_features(key)
    if cached is not None:
        return cached
    interp = _interpreter(data)
    shapes = {t["index"]: [int(d) for d in t["shape"]] for t in interp.get_tensor_details()}
    feats: dict[str, float] = {}
    for op in interp._get_ops_details():  # the only op-list reader LiteRT offers
        ins = [shapes.get(int(i)) for i in op["inputs"] if int(i) >= 0]
        outs = [shapes.get(int(i)) for i in op["outputs"]]
        kind, values = _op(op["op_name"], ins, outs)
        feats[f"{kind}.count"] = feats.get(f"{kind}.count", 0.0) + 1
        for k, v in values.items():
            name = k if "." in k else f"{kind}.{k}"
            feats[name] = feats.get(name, 0.0) + v
        feats["nodes"] = feats.get("nodes", 0.0) + 1
    store_spec_features(key, feats)
    return feats
