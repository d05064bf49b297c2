"""`module:function` data sources: user code returning (train, val) loaders or a DataBundle."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from edgeprune.userfile import import_user_file

from .bundle import DataBundle, DataError

__all__ = ["load_user_source"]

_PASSABLE = ("batch_size", "seed", "num_workers", "augment", "val_fraction")


def _import_file(path: Path) -> object:
    """Import a Python file under a fresh, unique module name."""
    return import_user_file(path, "edgeprune_user_data", DataError)


def _resolve(spec: str) -> Callable:
    """Find the function named by `pkg.module:function` or `path/to/file.py:function`."""
    target, _, func_name = spec.rpartition(":")
    if target.endswith(".py"):
        path = Path(target).expanduser().resolve()
        if not path.is_file():
            raise DataError(f"data file not found: {target} (source {spec!r})")
        module = _import_file(path)
    else:
        try:
            module = importlib.import_module(target)
        except ImportError as exc:
            raise DataError(f"cannot import module {target!r} for data source {spec!r}: {exc}") from exc
    func = getattr(module, func_name, None)
    if not callable(func):
        raise DataError(f"{target} has no function {func_name!r} (data source {spec!r})")
    return func


def _first_batch(loader: DataLoader, spec: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The first (x, y) batch of a loader, checked to be image tensors and class labels."""
    try:
        batch = next(iter(loader))
    except StopIteration:
        raise DataError(f"{spec}: the validation loader yields no batches") from None
    if not isinstance(batch, (tuple, list)) or len(batch) < 2:
        raise DataError(f"{spec}: loader batches must be (x, y) pairs, got {type(batch).__name__}")
    x, y = batch[0], batch[1]
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        raise DataError(f"{spec}: x batches must be N×C×H×W tensors, got {getattr(x, 'shape', type(x).__name__)}")
    if not isinstance(y, torch.Tensor) or y.dim() != 1 or y.dtype.is_floating_point:
        raise DataError(f"{spec}: y batches must be 1-D integer class tensors, got {getattr(y, 'dtype', type(y))}")
    return x, y


def _max_label(loader: DataLoader) -> int:
    """The largest label over a full pass of a loader."""
    return max(int(batch[1].max()) for batch in loader)


def load_user_source(spec: str, **options: object) -> DataBundle:
    """Call a user data function (passing the options its signature names) and wrap its result in a DataBundle."""
    func = _resolve(spec)
    params = inspect.signature(func).parameters
    kwargs = {k: v for k, v in options.items() if k in params and k in _PASSABLE}
    try:
        result = func(**kwargs)
    # User code can raise anything; report it as a data-source problem with the cause attached.
    except Exception as exc:
        raise DataError(f"data source {spec} raised {type(exc).__name__}: {exc}") from exc
    if isinstance(result, DataBundle):
        return result
    if not isinstance(result, (tuple, list)) or len(result) not in (2, 3):
        raise DataError(f"{spec} must return (train_loader, val_loader[, num_classes]) or a DataBundle, "
                        f"got {type(result).__name__}")
    train, val = result[0], result[1]
    for role, loader in (("train", train), ("val", val)):
        if not isinstance(loader, DataLoader):
            raise DataError(f"{spec}: {role} loader must be a torch DataLoader, got {type(loader).__name__}")
    x, _ = _first_batch(val, spec)
    notes = [f"input shape taken from the first validation batch {tuple(x.shape)}"]
    if len(result) == 3:
        num_classes = int(result[2])
    else:
        num_classes = _max_label(val) + 1
        notes.append(f"num_classes={num_classes} inferred from the largest validation label")
    return DataBundle(train=train, val=val, input_shape=(1, *x.shape[1:]), num_classes=num_classes, name=spec,
                      provenance=f"user data function {spec} (called with {sorted(kwargs) or 'no arguments'})",
                      normalization=None, notes=notes)
