"""Per-layer times of an ONNX model from onnxruntime's profiler (run by the agent), mapped back to torch layers."""
from __future__ import annotations

from collections import defaultdict

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


def layer_times_ms(node_ms: dict[str, float]) -> dict[str, float]:
    """Node times summed per torch layer; nodes with no module scope (e.g. a bare Relu) go to OTHER."""
    out: dict[str, float] = defaultdict(float)
    for node, ms in node_ms.items():
        out[layer_of(node) or OTHER] += ms
    return dict(out)
