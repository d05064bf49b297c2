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
from edgeprune.paths import cache_dir

FEATURES_VERSION = "2"  # bump when the op kinds or their features change (invalidates the cache)
ELTWISE = {"Add", "Sub", "Mul", "Div", "Relu", "Clip", "Sigmoid", "HardSigmoid", "HardSwish", "Tanh", "Sum",
           "Max", "Min", "Erf", "LeakyRelu", "Neg", "Sqrt", "Pow", "Exp", "BatchNormalization"}
MOVE = {"Concat": "concat", "Split": "split", "Slice": "split", "Pad": "pad", "Transpose": "transpose",
        "Gather": "split", "ReorderInput": "reorder", "ReorderOutput": "reorder", "Tile": "pad", "Expand": "pad"}
VIEW = {"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Dropout"}
POOL = {"AveragePool", "MaxPool"}
GLOBAL_POOL = {"GlobalAveragePool", "GlobalMaxPool", "ReduceMean"}


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


def _attrs(node) -> dict:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _conv_out(shape, w, a) -> list[int]:
    n, _, h, wd = shape
    k = a.get("kernel_shape") or list(w[2:])
    s, d = a.get("strides", [1, 1]), a.get("dilations", [1, 1])
    p = a.get("pads", [0, 0, 0, 0])
    if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        return [n, w[0], -(-h // s[0]), -(-wd // s[1])]
    ho = (h + p[0] + p[2] - d[0] * (k[0] - 1) - 1) // s[0] + 1
    wo = (wd + p[1] + p[3] - d[1] * (k[1] - 1) - 1) // s[1] + 1
    return [n, w[0], ho, wo]


def _pool_out(shape, a) -> list[int]:
    n, c, h, w = shape
    k, s = a["kernel_shape"], a.get("strides", [1, 1])
    p = a.get("pads", [0, 0, 0, 0])
    span_h, span_w = h + p[0] + p[2] - k[0], w + p[1] + p[3] - k[1]
    if a.get("ceil_mode", 0):
        return [n, c, -(-span_h // s[0]) + 1, -(-span_w // s[1]) + 1]
    return [n, c, span_h // s[0] + 1, span_w // s[1] + 1]


def _broadcast(shapes: list[list[int]]) -> list[int]:
    rank = max(len(s) for s in shapes)
    padded = [[1] * (rank - len(s)) + list(s) for s in shapes]
    return [max(dims) for dims in zip(*padded)]


def _reshape(shape: list[int], target: list[int]) -> list[int]:
    out = [shape[i] if t == 0 else int(t) for i, t in enumerate(target)]
    if -1 in out:
        known = int(np.prod([d for d in out if d != -1]))
        out[out.index(-1)] = int(np.prod(shape)) // max(known, 1)
    return out


def _slice(shape, consts, node) -> list[int]:
    starts, ends = consts[node.input[1]], consts[node.input[2]]
    axes = consts.get(node.input[3]) if len(node.input) > 3 and node.input[3] else list(range(len(starts)))
    steps = consts.get(node.input[4]) if len(node.input) > 4 and node.input[4] else [1] * len(starts)
    out = list(shape)
    for st, en, ax, sp in zip(starts, ends, axes, steps):
        out[ax] = len(range(*slice(int(st), int(en), int(sp)).indices(shape[ax])))
    return out


def _shapes_out(node, ins: list, consts: dict, w, a) -> list[list[int]]:
    """Output shapes of one node from its input shapes; [] when unknown."""
    op, x = node.op_type, ins[0] if ins else None
    if op in ("Conv", "FusedConv"):
        return [_conv_out(x, w, a)]
    if op in POOL:
        return [_pool_out(x, a)]
    if op in GLOBAL_POOL:
        return [x[:2] + [1] * (len(x) - 2)]
    if op in ("ReorderInput", "ReorderOutput"):
        return [list(x) if op == "ReorderInput" or "channels" not in a else [x[0], a["channels"], *x[2:]]]
    if op in ELTWISE:
        return [_broadcast([s for s in ins if s is not None])]
    if op == "Concat":
        ax = a["axis"] % len(x)
        return [[sum(s[ax] for s in ins) if i == ax else d for i, d in enumerate(x)]]
    if op == "Split":
        ax = a.get("axis", 0) % len(x)
        sizes = consts.get(node.input[1]) if len(node.input) > 1 and node.input[1] else a.get("split")
        sizes = sizes if sizes is not None else [x[ax] // len(node.output)] * len(node.output)
        return [[int(sz) if i == ax else d for i, d in enumerate(x)] for sz in sizes]
    if op == "Slice":
        return [_slice(x, consts, node)]
    if op == "Pad":
        pads = consts[node.input[1]]
        r = len(x)
        return [[d + int(pads[i]) + int(pads[i + r]) for i, d in enumerate(x)]]
    if op == "Transpose":
        return [[x[p] for p in a.get("perm", list(reversed(range(len(x)))))]]
    if op == "Reshape":
        return [_reshape(x, list(consts[node.input[1]]))]
    if op == "Flatten":
        ax = a.get("axis", 1)
        return [[int(np.prod(x[:ax])), int(np.prod(x[ax:]))]]
    if op in ("Gemm", "MatMul"):
        n_out = w[0] if op == "Gemm" and a.get("transB", 0) else w[-1]
        return [x[:-1] + [n_out]]
    if op == "Gather":
        ax = a.get("axis", 0) % len(x)
        return [x[:ax] + list(w or []) + x[ax + 1:]]
    if op in ("Identity", "Dropout"):
        return [list(x)]
    return []


def _kind(node, x: list[int], w, a, out: list[int]) -> tuple[str, dict[str, float]]:
    """(op kind, its features) of one node; convs keep ECC's bilinear terms."""
    op = node.op_type
    regime = "nchwc" if node.domain.endswith("nchwc") else "plain"
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
        return "gemm", {"macs": float(np.prod(x) * (out[-1] if out else 1))}
    return "other", {"elems": n_out}


def features_of_graph(graph) -> dict[str, float]:
    """Per-op-kind feature sums (``kind.feature``), node counts per kind (``kind.count``) and ``nodes``."""
    from onnx import numpy_helper

    consts = {i.name: numpy_helper.to_array(i).tolist() for i in graph.initializer if len(i.dims) <= 1}
    dims = {i.name: list(i.dims) for i in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant":
            consts[node.output[0]] = numpy_helper.to_array(_attrs(node)["value"]).tolist()
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in graph.input}
    feats: dict[str, float] = defaultdict(float)
    for node in graph.node:
        if node.op_type == "Constant":
            continue
        a = _attrs(node)
        ins = [shapes.get(name) for name in node.input if name and name not in dims]
        w = dims.get(node.input[1]) if len(node.input) > 1 else None
        try:
            outs = _shapes_out(node, ins, consts, w, a)
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise GraphFeatureError(f"cannot follow shapes through {node.op_type} node {node.name!r}: {exc}") from exc
        if not outs and node.op_type not in VIEW:
            raise GraphFeatureError(f"no shape rule for {node.domain or 'ai.onnx'}:{node.op_type} (node "
                                    f"{node.name!r}); the platform model cannot cost this graph yet")
        for name, shape in zip(node.output, outs):
            shapes[name] = shape
        kind, values = _kind(node, ins[0] if ins else None, w, a, outs[0] if outs else None)
        feats[f"{kind}.count"] += 1
        for key, v in values.items():
            feats[f"{kind}.{key}"] += v
        if node.op_type in ("Conv",) and len(node.input) > 3 and node.input[3]:
            feats["eltwise.elems"] += float(np.prod(outs[0]))  # residual Add fused into the NCHWc conv
        feats["nodes"] += 1
    return dict(feats)


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
