"""`load_data`: turn a source string (digits, npz:PATH, cifar10:DIR, module:function) into a DataBundle."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from urllib.parse import parse_qsl

import torch

from .arrays import stratified_split, subsample
from .bundle import DataBundle, DataError, make_bundle
from .sources import RawData, read_cifar10, read_digits, read_npz_source
from .user import load_user_source

__all__ = ["CIFAR_PRETRAINED_NORM", "load_data"]

# Mean/std the pretrained CIFAR ResNets in ../shared/data/pretrained/cifar-resnet were trained with.
CIFAR_PRETRAINED_NORM = {"mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)}
_QUERY_KEYS = ("limit", "layout")
_AUGMENT_MIN_SIZE = 32


def _split_query(source: str) -> tuple[str, dict[str, str]]:
    """Split `base?limit=N&layout=nhwc` into the base and its options."""
    base, sep, query = source.partition("?")
    options = dict(parse_qsl(query, keep_blank_values=True)) if sep else {}
    unknown = sorted(set(options) - set(_QUERY_KEYS))
    if unknown:
        raise DataError(f"unknown option(s) {', '.join(unknown)} in data source {source!r}; known: limit, layout")
    return base, options


def _channel_stats(x: torch.Tensor, scale: float | None) -> dict:
    """Per-channel mean and std of a (scaled) NCHW tensor; exact and cheap for uint8 via histograms."""
    means, stds = [], []
    for c in range(x.shape[1]):
        if x.dtype == torch.uint8:
            counts = torch.bincount(x[:, c].reshape(-1), minlength=256).double()
            values = torch.arange(256, dtype=torch.float64) * (scale or 1.0)
            mean = float((counts * values).sum() / counts.sum())
            std = float(((counts * (values - mean) ** 2).sum() / counts.sum()).sqrt())
        else:
            chan = x[:, c].double() * (scale or 1.0)
            mean, std = float(chan.mean()), float(chan.std(unbiased=False))
        means.append(round(mean, 6))
        stds.append(round(max(std, 1e-6), 6))
    return {"mean": tuple(means), "std": tuple(stds), "source": "per-channel statistics of the training split"}


def _normalization(normalize: object, raw: RawData, x_train: torch.Tensor, scale: float | None) -> dict | None:
    """Resolve `normalize` ('auto', None or (mean, std)) into the mean/std applied after scaling."""
    channels = x_train.shape[1]
    if normalize is None:
        return None
    if normalize == "auto":
        if x_train.dtype == torch.uint8 and channels == 3:
            return {**CIFAR_PRETRAINED_NORM, "source": "mean/std of the pretrained CIFAR ResNets"}
        if x_train.dtype == torch.uint8 or raw.stats_normalize:
            return _channel_stats(x_train, scale)
        return None
    if not isinstance(normalize, Sequence) or len(normalize) != 2:
        raise DataError(f"normalize must be 'auto', None or (mean, std), got {normalize!r}")
    mean, std = (tuple(float(v) for v in part) for part in normalize)
    if len(mean) != channels or len(std) != channels or min(std) <= 0:
        raise DataError(f"normalize needs {channels} means and {channels} positive stds, got {normalize!r}")
    return {"mean": mean, "std": std, "source": "given"}


def _read(base: str, layout: str | None) -> RawData:
    """Dispatch a built-in source string to its reader."""
    if base == "digits":
        return read_digits()
    if base.startswith("npz:"):
        return read_npz_source(Path(base[4:]).expanduser(), layout)
    if base.startswith("cifar10:"):
        return read_cifar10(Path(base[8:]).expanduser())
    raise DataError(f"unknown data source {base!r}; use digits, npz:PATH, cifar10:DIR or module:function")


def load_data(
    source: str = "digits",
    val_fraction: float = 0.1,
    seed: int = 0,
    batch_size: int = 128,
    augment: bool = True,
    num_workers: int = 0,
    *,
    limit: int | None = None,
    layout: str | None = None,
    normalize: object = "auto",
) -> DataBundle:
    """Load a data source into train/val loaders; source forms and options are listed in `edgeprune.data`."""
    base, options = _split_query(source.strip())
    is_builtin = base == "digits" or base.startswith(("npz:", "cifar10:"))
    if not is_builtin and ":" in base:
        if options or limit is not None or layout is not None:
            raise DataError(f"limit/layout options do not apply to a module:function source ({source!r})")
        return load_user_source(base, batch_size=batch_size, seed=seed, num_workers=num_workers,
                                augment=augment, val_fraction=val_fraction)
    if "limit" in options:
        try:
            limit = int(options["limit"])
        except ValueError:
            raise DataError(f"limit must be an integer in {source!r}, got {options['limit']!r}") from None
    layout = options.get("layout", layout)
    layout = layout.lower() if isinstance(layout, str) else layout
    raw = _read(base, layout)
    if raw.whole is not None:
        train, val = stratified_split(*subsample(*raw.whole, limit, seed), val_fraction, seed, base)
    else:
        train, val = subsample(*raw.train, limit, seed), subsample(*raw.val, limit, seed + 1)
    x_train = train[0]
    scale = 1.0 / 255.0 if x_train.dtype == torch.uint8 else None
    norm = _normalization(normalize, raw, x_train, scale)
    num_classes = len(raw.classes) if raw.classes else int(max(train[1].max(), val[1].max())) + 1
    h, w = x_train.shape[2:]
    do_augment = augment and min(h, w) >= _AUGMENT_MIN_SIZE
    notes = list(raw.notes)
    if augment and not do_augment:
        notes.append(f"no augmentation for {h}×{w} images (crop/flip only from {_AUGMENT_MIN_SIZE} pixels up)")
    if limit is not None:
        notes.append(f"limited to {limit} examples per file (stratified, seed {seed})")
    pixels = "uint8 scaled by 1/255" if scale else "float used as stored"
    provenance = (
        f"{raw.provenance}; {len(train[1])} train / {len(val[1])} val; {pixels}; "
        f"normalisation: {norm['source'] + ' ' + str(norm['mean']) + '/' + str(norm['std']) if norm else 'none'}; "
        f"augmentation: {'random crop (pad 4) + horizontal flip' if do_augment else 'none'}"
        + "".join(f"; {note}" for note in notes)
    )
    return make_bundle(
        train, val, num_classes=num_classes, name=source, provenance=provenance, scale=scale, normalization=norm,
        batch_size=batch_size, augment=do_augment, seed=seed, num_workers=num_workers, classes=raw.classes,
        notes=notes,
    )
