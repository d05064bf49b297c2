"""Multiply-accumulate counts of layers and networks at given widths (the FLOPs baseline)."""
from __future__ import annotations

from collections.abc import Collection

from edgeprune.models.layer_space import LayerSignature, LayerSpace


def output_hw(sig: LayerSignature) -> tuple[int, int]:
    """Spatial size of a conv layer's output."""
    return tuple((sig.in_hw[i] + 2 * sig.padding[i] - sig.dilation[i] * (sig.kernel[i] - 1) - 1)
                 // sig.stride[i] + 1 for i in range(2))


def layer_macs(sig: LayerSignature, c_in: int, c_out: int) -> int:
    """MACs of one layer (BN and activation folded away, as runtimes do)."""
    if sig.op == "linear":
        return c_in * c_out
    ho, wo = output_hw(sig)
    per_position = sig.kernel[0] * sig.kernel[1] * ho * wo
    if sig.op == "dwconv":
        return c_out * per_position
    return c_in * c_out * per_position // sig.groups


def network_macs(space: LayerSpace, widths: dict[str, int] | None = None, removed: Collection[str] = ()) -> int:
    """MACs of all conv/linear layers of a model at ``widths`` (dense when None), leaving out ``removed`` layers."""
    widths = widths or {}
    return sum(layer_macs(l.signature, *l.dims(widths)) for l in space.layers if l.name not in removed)
