"""Data given from Python: torch Datasets or DataLoaders, for classification or, with hooks, any other task."""
from __future__ import annotations

import torch
from torch.utils.data import DataLoader, Dataset

from .bundle import DataBundle, DataError, EpochSampler

__all__ = ["python_bundle"]


def _loader(data, batch_size: int, shuffle: bool, role: str) -> DataLoader:
    """``data`` as a DataLoader: as given, or a Dataset batched (shuffled by epoch-seeded permutations)."""
    if isinstance(data, DataLoader):
        return data
    if not isinstance(data, Dataset):
        raise DataError(f"{role} must be a torch Dataset or DataLoader, got {type(data).__name__}")
    if batch_size < 1:
        raise DataError(f"batch_size must be >= 1, got {batch_size}")
    sampler = EpochSampler(len(data)) if shuffle else None
    return DataLoader(data, batch_size=batch_size, sampler=sampler)


def python_bundle(train, val, batch_size: int = 128, loss_fn=None, eval_fn=None) -> DataBundle:
    """A DataBundle of (x, y) batches from Datasets or DataLoaders; without ``loss_fn`` the targets must be class
    labels (the number of classes is read from the validation labels)."""
    if val is None:
        raise DataError("give val= (a Dataset or DataLoader): accuracy is measured on held-out data")
    train_loader, val_loader = _loader(train, batch_size, True, "train"), _loader(val, batch_size, False, "val")
    try:
        batch = next(iter(val_loader))
    except StopIteration:
        raise DataError("the validation data yields no batches") from None
    if not isinstance(batch, (tuple, list)) or len(batch) < 2 or not isinstance(batch[0], torch.Tensor):
        raise DataError(f"batches must be (x, y) pairs with x a tensor, got {type(batch).__name__}")
    num_classes = 0
    if loss_fn is None:
        y = batch[1]
        if not isinstance(y, torch.Tensor) or y.dim() != 1 or y.dtype.is_floating_point:
            raise DataError("without loss_fn the targets must be 1-D integer class labels; pass loss_fn and "
                            "eval_fn for other targets")
        num_classes = max(int(b[1].max()) for b in val_loader) + 1
    elif eval_fn is None:
        raise DataError("a loss_fn needs an eval_fn too: the accuracy compress reports comes from it")
    return DataBundle(train=train_loader, val=val_loader, input_shape=(1, *batch[0].shape[1:]),
                      num_classes=num_classes, name="python data",
                      provenance=f"given from Python ({len(train_loader)} train / {len(val_loader)} val batches)",
                      loss_fn=loss_fn, eval_fn=eval_fn)
