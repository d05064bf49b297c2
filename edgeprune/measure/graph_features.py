"""Cost features of the graph onnxruntime really runs: optimise like the measurement does, read what remains."""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections import defaultdict
from functools import lru_cache
from importlib.metadata import version
from pathlib import Path

import numpy as np

from edgeprune.errors import EdgepruneError
from edgeprune.files import atomic_write
from edgeprune.measure.graph_shapes import ELTWISE, GLOBAL_POOL, MOVE, POOL, VIEW, node_records
from edgeprune.paths import cache_dir

FEATURES_VERSION = "3"  # bump when the op kinds or their features change (invalidates the cache)
# Every weight is read once per inference, whichever kind of node holds it: with several MB of weights they come
# from L3, not L2, so one shared per-weight term (the network's weight elements) prices that stream.
WEIGHTS = "weights.elems"


class GraphFeatureError(EdgepruneError):
    """A model graph could not be read into cost features."""


def optimized_graph(onnx_bytes: bytes, level: str = "all"):
    """The onnx GraphProto onnxruntime runs at ``level`` (the measurement uses 'all': fusions + NCHWc layout)."""
    import onnx
    import onnxruntime as ort

    levels = {"basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
              "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
              "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "optimized.onnx")
        opts = ort.SessionOptions()
        opts.graph_optimization_level = levels[level]
        opts.intra_op_num_threads = 1
        opts.optimized_model_filepath = path
        opts.log_severity_level = 3
        try:
            ort.InferenceSession(onnx_bytes, opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types, not exported stably
            raise GraphFeatureError(f"onnxruntime cannot load the model: {exc}") from exc
        return onnx.load(path).graph


def _kind(rec: dict) -> tuple[str, dict[str, float]]:
    """(op kind, its features) of one node record; convs keep ECC's bilinear terms. A key with a dot names
    another kind's feature (a residual Add fused into an NCHWc conv is element-wise work)."""
    op, a, w = rec["op"], rec["attrs"], rec["w"]
    x = rec["ins"][0] if rec["ins"] else None
    out = rec["outs"][0] if rec["outs"] else None
    regime = "nchwc" if rec["domain"].endswith("nchwc") else "plain"
    n_out = float(np.prod(out)) if out else 0.0
    n_in = float(np.prod(x)) if x else 0.0
    if op in ("Conv", "FusedConv"):
        g = a.get("group", 1)
        k, s = (a.get("kernel_shape") or list(w[2:])), a.get("strides", [1, 1])
        if g > 1 and g == x[1] == out[1]:
            t = f"dw{k[0]}s{s[0]}"
        elif g > 1:
            t = "group"
        else:
            t = f"k{k[0]}s{s[0]}" if k[0] in (1, 3) and s[0] in (1, 2) else "kother"
        area = float(np.prod(out[2:]))
        feats = {"macs": float(out[1] * (x[1] // g) * np.prod(k)) * area, "in": n_in, "out": n_out}
        if g > 1:
            feats["groups"] = float(g)  # the plain kernel loops over groups: a cost per group, not per MAC
        if regime == "plain" and np.prod(k) > 1:
            feats["im2col"] = float(x[1] * np.prod(k)) * area  # the unfolded input the plain kernel builds
        if op == "Conv" and rec["sum_input"]:
            feats["eltwise.elems"] = n_out  # residual Add fused into the NCHWc conv
        feats[WEIGHTS] = float(np.prod(w))
        return f"conv_{t}_{regime}", feats
    if op in POOL:
        return f"pool_{regime}", {"elems": n_out * float(np.prod(a["kernel_shape"]))}
    if op in GLOBAL_POOL:
        return "gpool", {"elems": n_in}
    if op in ELTWISE:
        return "eltwise", {"elems": n_out}
    if op in MOVE:
        return MOVE[op], {"elems": max(n_in, n_out)}
    if op in VIEW:
        return "view", {}
    if op in ("Gemm", "MatMul"):
        return "gemm", {"macs": float(np.prod(x) * (out[-1] if out else 1)), WEIGHTS: float(np.prod(w or [0]))}
    return "other", {"elems": n_out}


def features_of_nodes(records: list[dict]) -> dict[str, float]:
    """Per-op-kind feature sums (``kind.feature``), node counts per kind (``kind.count``) and ``nodes``."""
    feats: dict[str, float] = defaultdict(float)
    for rec in records:
        kind, values = _kind(rec)
        feats[f"{kind}.count"] += 1
        for key, v in values.items():
            feats[key if "." in key else f"{kind}.{key}"] += v
        feats["nodes"] += 1
    return dict(feats)


def features_of_graph(graph) -> dict[str, float]:
    """Cost features of an optimised onnx GraphProto."""
    try:
        return features_of_nodes(node_records(graph))
    except ValueError as exc:
        raise GraphFeatureError(f"{exc}; the platform model cannot cost this graph") from exc


def graph_digest(onnx_bytes: bytes) -> str:
    """Identity of a graph as exported (the cache key with the runtime's version)."""
    return hashlib.sha256(onnx_bytes).hexdigest()


def onnx_features(onnx_bytes: bytes, level: str = "all") -> dict[str, float]:
    """Features of the runtime-optimised graph, from the on-disk cache when this graph was seen before."""
    import onnxruntime as ort

    key = hashlib.sha256(f"{FEATURES_VERSION}|{ort.__version__}|{level}|{graph_digest(onnx_bytes)}".encode())
    path = cache_dir() / "graph_features" / f"{key.hexdigest()[:32]}.json"
    cached = read_cached(path)
    if cached is not None:
        return cached
    feats = features_of_graph(optimized_graph(onnx_bytes, level))
    _write(path, feats)
    return feats


@lru_cache(maxsize=1)
def _versions() -> str:
    """Versions that change exported graphs or their optimisation (read without importing the packages)."""
    return f"{version('onnxruntime')}|{version('torch')}"


def _spec_path(key: str) -> Path:
    h = hashlib.sha256(f"{FEATURES_VERSION}|{_versions()}|{key}".encode()).hexdigest()
    return cache_dir() / "graph_features" / f"spec-{h[:32]}.json"


def cached_spec_features(key: str) -> dict[str, float] | None:
    """Features cached for a model description (spec, widths, input shape) without exporting it again."""
    return read_cached(_spec_path(key))


def store_spec_features(key: str, feats: dict[str, float]) -> None:
    _write(_spec_path(key), feats)


def _write(path: Path, feats: dict) -> None:
    atomic_write(path, json.dumps(feats, sort_keys=True), durable=False)  # a cache: lost entries are recomputed


def read_cached(path: Path) -> dict[str, float] | None:
    """A cached feature dict, or None when absent or unreadable."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None
