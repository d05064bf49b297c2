"""Per-node times of an ONNX model from onnxruntime's profiler (the runtime's own per-op timing)."""
from __future__ import annotations

import json
import os
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np

PROFILE_RUNS = 50


def node_times_us(trace: list[dict]) -> Dict[str, List[float]]:
    """Kernel durations (µs) per node name, one entry per run, from an onnxruntime profile trace."""
    times: Dict[str, List[float]] = defaultdict(list)
    for event in trace:
        name = event.get("name", "")
        if event.get("cat") == "Node" and name.endswith("_kernel_time"):
            times[name[: -len("_kernel_time")]].append(float(event.get("dur", 0)))
    return dict(times)


def profile_onnx(onnx_bytes: bytes, runs: int = PROFILE_RUNS, threads: int = 1,
                 max_s: float = float("inf")) -> Tuple[Dict[str, float], int]:
    """Median per-run ms per node (basic graph optimizations) over up to ``runs`` inferences within ``max_s``."""
    import onnxruntime as ort

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
        done, end = 0, time.monotonic() + max_s
        while done < runs and (done == 0 or time.monotonic() < end):
            sess.run(None, {inp.name: x})
            done += 1
        trace = json.loads(Path(sess.end_profiling()).read_text())
    return {node: float(np.median(t)) / 1e3 for node, t in node_times_us(trace).items()}, done
