"""Static-shape checks and deterministic random input tensors for loaded models."""
from __future__ import annotations

from typing import Iterable, List

import numpy as np

from .errors import ModelInvalid

INPUT_SEED = 0
MAX_INPUT_BYTES = 256 * 2**20  # far above any edge CNN input; stops a declared 100000x100000 image early


def static_shape(input_name: str, dims: Iterable[object]) -> List[int]:
    """Return `dims` as ints, or raise ModelInvalid when any dimension is dynamic."""
    dims = list(dims)
    shape: List[int] = []
    for dim in dims:
        if isinstance(dim, (int, np.integer)) and not isinstance(dim, bool) and int(dim) >= 0:
            shape.append(int(dim))
            continue
        raise ModelInvalid(
            f"input '{input_name}' has a dynamic shape {dims}: "
            "export with static shapes (fixed batch size and resolution) before measuring")
    return shape


def random_input(shape: List[int], dtype: np.dtype, rng: np.random.Generator) -> np.ndarray:
    """Deterministic random tensor of `shape` and `dtype` (normal floats, small or full-range ints)."""
    dt = np.dtype(dtype)
    size = int(np.prod(shape, dtype=object)) * dt.itemsize
    if size > MAX_INPUT_BYTES:
        raise ModelInvalid(f"an input of shape {shape} ({dt.name}) needs {size} bytes, over the agent's "
                           f"{MAX_INPUT_BYTES // 2**20} MiB per input; export with a smaller static shape")
    if dt.kind == "f":
        return rng.standard_normal(shape).astype(dt)
    if dt.kind == "b":
        return rng.integers(0, 2, size=shape).astype(dt)
    if dt.kind in "iu":
        if dt.itemsize <= 2:  # quantised activations: use the whole range
            info = np.iinfo(dt)
            return rng.integers(int(info.min), int(info.max) + 1, size=shape).astype(dt)
        return rng.integers(0, 2, size=shape).astype(dt)  # int32/int64 are usually indices
    raise ModelInvalid(f"unsupported input dtype {dt.name}; only numeric and bool inputs can be fed")


def make_rng() -> np.random.Generator:
    """Fresh generator with the fixed input seed, so every run feeds identical data."""
    return np.random.default_rng(INPUT_SEED)
