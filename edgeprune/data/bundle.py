"""DataBundle and the in-memory loaders behind it: epoch-seeded shuffling and per-batch transforms."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils.data import DataLoader, Sampler, TensorDataset

from edgeprune.errors import EdgepruneError

from .augment import augment_batch

__all__ = ["BatchTransform", "DataBundle", "DataError", "EpochSampler", "make_bundle"]


class DataError(EdgepruneError):
    """A data source is missing, unreadable or holds arrays of the wrong kind."""


@dataclass
class DataBundle:
    """Train/val loaders plus what a model needs to know about them."""

    train: DataLoader
    val: DataLoader
    input_shape: tuple[int, int, int, int]
    num_classes: int
    name: str
    provenance: str
    normalization: dict | None = None
    classes: tuple[str, ...] | None = None
    notes: list[str] = field(default_factory=list)
    # The task when it is not classification: loss_fn(outputs, targets) -> scalar tensor for training and channel
    # ranking, eval_fn(model, batches) -> float (higher is better) for the reported accuracy (train/objective.py).
    loss_fn: Callable[[Any, Any], Any] | None = None
    eval_fn: Callable[[Any, Any], float] | None = None


class EpochSampler(Sampler[int]):
    """Shuffles with a permutation seeded by (seed, epoch); the epoch advances after every pass unless set."""

    def __init__(self, n: int, seed: int = 0) -> None:
        self.n, self.seed, self.epoch = n, seed, 0

    def set_epoch(self, epoch: int) -> None:
        """Make the next pass use the order of `epoch` (as DistributedSampler does)."""
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        self.epoch += 1
        return iter(torch.randperm(self.n, generator=gen).tolist())

    def __len__(self) -> int:
        return self.n


class BatchTransform:
    """Collate (x, y) samples, augment (training only), scale to float and normalise per channel."""

    def __init__(self, scale: float | None, mean: Sequence[float] | None, std: Sequence[float] | None,
                 augment: bool = False) -> None:
        self.scale, self.augment = scale, augment
        self.mean = None if mean is None else torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
        self.std = None if std is None else torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)

    def __call__(self, samples: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Turn a list of (image, label) samples into one normalised float batch."""
        x = torch.stack([s[0] for s in samples])
        y = torch.stack([s[1] for s in samples])
        if self.augment:
            x = augment_batch(x)
        x = x.float()
        if self.scale is not None:
            x = x * self.scale
        if self.mean is not None:
            x = (x - self.mean) / self.std
        return x, y


def make_bundle(
    train: tuple[torch.Tensor, torch.Tensor],
    val: tuple[torch.Tensor, torch.Tensor],
    *,
    num_classes: int,
    name: str,
    provenance: str,
    scale: float | None,
    normalization: dict | None,
    batch_size: int,
    augment: bool,
    seed: int,
    num_workers: int = 0,
    classes: Sequence[str] | None = None,
    notes: Sequence[str] = (),
) -> DataBundle:
    """Wrap in-memory NCHW (x, y) tensors into a DataBundle with shuffled, optionally augmented training batches."""
    if batch_size < 1:
        raise DataError(f"batch_size must be >= 1, got {batch_size}")
    mean = std = None
    if normalization is not None:
        mean, std = normalization["mean"], normalization["std"]
    train_ds, val_ds = TensorDataset(*train), TensorDataset(*val)
    train_loader = DataLoader(
        train_ds, batch_size=batch_size, sampler=EpochSampler(len(train_ds), seed),
        collate_fn=BatchTransform(scale, mean, std, augment), num_workers=num_workers,
    )
    val_loader = DataLoader(
        val_ds, batch_size=max(batch_size, 256), shuffle=False,
        collate_fn=BatchTransform(scale, mean, std, False), num_workers=num_workers,
    )
    c, h, w = train[0].shape[1:]
    return DataBundle(
        train=train_loader, val=val_loader, input_shape=(1, c, h, w), num_classes=num_classes, name=name,
        provenance=provenance, normalization=normalization, classes=None if classes is None else tuple(classes),
        notes=list(notes),
    )
