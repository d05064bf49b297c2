"""Per-layer times of an ONNX model from onnxruntime's profiler, mapped back to torch layer names."""
from __future__ import annotations

import json
import os
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np
import onnxruntime as ort

OTHER = "(unattributed)"


def layer_of(node_name: str) -> str | None:
    """'/layer1/layer1.0/conv1/Conv' → 'layer1.0.conv1'; '/Relu' (no module scope) → None.

    Each scope segment is a module name relative to its parent, except that a Sequential's child repeats the
    parent's segment ('features', 'features.3'): then only the new suffix is a path component.
    """
    parts: list[str] = []
    prev = ""
    for seg in [s for s in node_name.strip("/").split("/")[:-1] if s]:
        parts.append(seg[len(prev) + 1:] if prev and seg.startswith(prev + ".") else seg)
        prev = seg
    return ".".join(parts) or None


def node_times_us(trace: list[dict]) -> dict[str, list[float]]:
    """Kernel durations (µs) per node name, one entry per run, from an onnxruntime profile trace."""
    times: dict[str, list[float]] = defaultdict(list)
    for event in trace:
        name = event.get("name", "")
        if event.get("cat") == "Node" and name.endswith("_kernel_time"):
            times[name[: -len("_kernel_time")]].append(float(event.get("dur", 0)))
    return dict(times)


def profile_onnx(onnx_bytes: bytes, runs: int = 50, threads: int = 1) -> dict[str, float]:
    """Median per-run time in ms per node (basic graph optimizations), over ``runs`` inferences on random input."""
    with tempfile.TemporaryDirectory() as tmp:
        opts = ort.SessionOptions()
        opts.enable_profiling = True
        opts.profile_file_prefix = os.path.join(tmp, "profile")
        opts.intra_op_num_threads = threads
        # Basic optimizations only: the extended/layout passes fuse Conv+Relu into nodes named after tensors,
        # which would lose the torch module scope in the node names.
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        sess = ort.InferenceSession(onnx_bytes, opts, providers=["CPUExecutionProvider"])
        inp = sess.get_inputs()[0]
        x = np.random.default_rng(0).standard_normal([int(d) for d in inp.shape]).astype(np.float32)
        for _ in range(runs):
            sess.run(None, {inp.name: x})
        trace = json.loads(Path(sess.end_profiling()).read_text())
    return {node: float(np.median(t)) / 1e3 for node, t in node_times_us(trace).items()}


def layer_times_ms(node_ms: dict[str, float]) -> dict[str, float]:
    """Node times summed per torch layer; nodes with no module scope (e.g. a bare Relu) go to OTHER."""
    out: dict[str, float] = defaultdict(float)
    for node, ms in node_ms.items():
        out[layer_of(node) or OTHER] += ms
    return dict(out)
