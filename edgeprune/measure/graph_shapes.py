"""Output shapes of the nodes of an onnxruntime-optimised graph, walked from the graph inputs."""
from __future__ import annotations

import numpy as np

ELTWISE = {"Add", "Sub", "Mul", "Div", "Relu", "Clip", "Sigmoid", "HardSigmoid", "HardSwish", "Tanh", "Sum",
           "Max", "Min", "Erf", "LeakyRelu", "Neg", "Sqrt", "Pow", "Exp", "BatchNormalization"}
MOVE = {"Concat": "concat", "Split": "split", "Slice": "split", "Pad": "pad", "Transpose": "transpose",
        "Gather": "split", "ReorderInput": "reorder", "ReorderOutput": "reorder", "Tile": "pad", "Expand": "pad"}
VIEW = {"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Dropout"}
POOL = {"AveragePool", "MaxPool"}
GLOBAL_POOL = {"GlobalAveragePool", "GlobalMaxPool", "ReduceMean"}
KEPT_ATTRS = ("group", "kernel_shape", "strides")  # what the cost features read


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


def node_records(graph) -> list[dict]:
    """One plain record per node in graph order: op, domain, input/weight/output shapes, the attributes costs read,
    whether a 4th input is summed in. Raises ValueError (naming the node) where a shape cannot be followed."""
    from onnx import numpy_helper

    consts = {i.name: numpy_helper.to_array(i).tolist() for i in graph.initializer if len(i.dims) <= 1}
    dims = {i.name: list(i.dims) for i in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant":
            consts[node.output[0]] = numpy_helper.to_array(_attrs(node)["value"]).tolist()
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in graph.input}
    records = []
    for node in graph.node:
        if node.op_type == "Constant":
            continue
        a = _attrs(node)
        ins = [shapes.get(name) for name in node.input if name and name not in dims]
        w = dims.get(node.input[1]) if len(node.input) > 1 else None
        try:
            outs = _shapes_out(node, ins, consts, w, a)
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise ValueError(f"cannot follow shapes through {node.op_type} node {node.name!r}: {exc}") from exc
        if not outs and node.op_type not in VIEW:
            raise ValueError(f"no shape rule for {node.domain or 'ai.onnx'}:{node.op_type} (node {node.name!r})")
        for name, shape in zip(node.output, outs):
            shapes[name] = shape
        records.append({"op": node.op_type, "domain": node.domain, "ins": ins, "w": w, "outs": outs,
                        "attrs": {k: v for k, v in a.items() if k in KEPT_ATTRS},
                        "sum_input": len(node.input) > 3 and bool(node.input[3])})
    return records
