"""Check and convert raw image/label arrays: layout detection, dtypes, label range, stratified splits."""

from __future__ import annotations

import numpy as np
import torch

from .bundle import DataError

__all__ = ["check_labels", "stratified_order", "stratified_split", "subsample", "to_nchw"]

_CHANNELS = (1, 3)


def _guess_layout(shape: tuple[int, ...], dtype: np.dtype) -> tuple[str, str]:
    """Return ('nhwc'|'nchw', why) for a 4-D image array shape."""
    last, second = shape[3] in _CHANNELS, shape[1] in _CHANNELS
    if last and not second:
        return "nhwc", f"last axis has {shape[3]} channel(s)"
    if second and not last:
        return "nchw", f"axis 1 has {shape[1]} channel(s)"
    default = "nhwc" if dtype == np.uint8 else "nchw"
    return default, f"ambiguous shape {shape}; assumed {default.upper()} because dtype is {dtype}"


def to_nchw(x: np.ndarray, where: str, layout: str | None = None) -> tuple[torch.Tensor, str]:
    """Validate an image array and return it as an NCHW tensor (uint8 kept, floats as float32) plus a layout note."""
    if not isinstance(x, np.ndarray):
        raise DataError(f"{where}: x must be a numpy array, got {type(x).__name__}")
    if x.dtype != np.uint8 and not np.issubdtype(x.dtype, np.floating):
        raise DataError(f"{where}: x has dtype {x.dtype}; expected uint8 images (0..255) or floating point")
    if x.ndim == 3:
        x, note = x[:, None], f"x is N×H×W {x.shape}: treated as 1 channel"
    elif x.ndim == 4:
        if layout is None:
            layout, why = _guess_layout(x.shape, x.dtype)
            note = f"x {x.shape} read as {layout.upper()} ({why})"
        elif layout in ("nhwc", "nchw"):
            note = f"x {x.shape} read as {layout.upper()} (given)"
        else:
            raise DataError(f"{where}: layout must be 'nhwc' or 'nchw', got {layout!r}")
        if layout == "nhwc":
            x = x.transpose(0, 3, 1, 2)
    else:
        raise DataError(f"{where}: x must be N×H×W×C, N×C×H×W or N×H×W, got shape {x.shape}")
    if x.shape[0] == 0:
        raise DataError(f"{where}: x holds no examples")
    if x.dtype != np.uint8:
        x = x.astype(np.float32, copy=False)
        if not np.isfinite(x).all():
            raise DataError(f"{where}: x contains NaN or infinite values")
    return torch.from_numpy(np.ascontiguousarray(x)), note


def check_labels(y: np.ndarray, n: int, where: str, num_classes: int | None = None) -> torch.Tensor:
    """Validate 1-D integer labels for `n` examples (0..num_classes-1 when given) and return them as int64."""
    if not isinstance(y, np.ndarray):
        raise DataError(f"{where}: y must be a numpy array, got {type(y).__name__}")
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise DataError(f"{where}: y must be 1-D class indices, got shape {y.shape}")
    if not np.issubdtype(y.dtype, np.integer) or y.dtype == np.bool_:
        raise DataError(f"{where}: y has dtype {y.dtype}; expected integer class indices")
    if len(y) != n:
        raise DataError(f"{where}: x has {n} examples but y has {len(y)} labels")
    if y.min() < 0:
        raise DataError(f"{where}: negative label {int(y.min())}; labels must be 0..K-1")
    if num_classes is not None and y.max() >= num_classes:
        raise DataError(f"{where}: label {int(y.max())} out of range 0..{num_classes - 1} ({num_classes} classes)")
    return torch.from_numpy(y.astype(np.int64))


def stratified_order(y: torch.Tensor, seed: int) -> torch.Tensor:
    """A seeded permutation in which every prefix holds the classes in about their overall proportions."""
    labels = y.numpy()
    n = len(labels)
    perm = np.random.default_rng(seed).permutation(n)
    yp = labels[perm]
    counts = np.bincount(yp)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.empty(n)
    rank[np.argsort(yp, kind="stable")] = np.arange(n) - np.repeat(starts, counts)
    key = (rank + 0.5) / counts[yp]
    return torch.from_numpy(perm[np.argsort(key, kind="stable")])


def subsample(x: torch.Tensor, y: torch.Tensor, limit: int | None, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Keep a deterministic stratified subset of at most `limit` examples."""
    if limit is None or limit >= len(y):
        return x, y
    if limit < 1:
        raise DataError(f"limit must be >= 1, got {limit}")
    keep = stratified_order(y, seed)[:limit]
    return x[keep], y[keep]


def stratified_split(
    x: torch.Tensor, y: torch.Tensor, val_fraction: float, seed: int, where: str
) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """Split off a deterministic stratified validation part of about `val_fraction`."""
    if not 0.0 < val_fraction < 1.0:
        raise DataError(f"val_fraction must be between 0 and 1 (exclusive), got {val_fraction}")
    n_val = max(1, round(len(y) * val_fraction))
    if n_val >= len(y):
        raise DataError(f"{where}: {len(y)} example(s) are too few to split off a validation part")
    order = stratified_order(y, seed)
    val, train = order[:n_val], order[n_val:]
    return (x[train], y[train]), (x[val], y[val])
