"""A fixed reference workload timed between blocks of the model, so machine-wide slowdowns cancel out.

On shared or thermally limited machines whole-process speed drifts by 5–20 % over seconds to minutes; the ratio
of a model's time to this reference, measured in alternating blocks, stays within about 1 %.
"""
from __future__ import annotations

from importlib import resources
from typing import Optional

from .runtimes import LoadedModel, load_model

NAME = "conv32x32_k3_16x16"
FILES = {"onnxruntime": "reference_conv32_16x16.onnx"}


def load_reference(runtime: str, threads: int) -> Optional[LoadedModel]:
    """The reference model for ``runtime``, or None when the package ships none for it."""
    name = FILES.get(runtime)
    if name is None:
        return None
    data = resources.files("edgeprune_agent").joinpath("data", name).read_bytes()
    return load_model(runtime, data, threads)
