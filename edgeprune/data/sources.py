"""Readers for the built-in sources (digits, npz file or train/test directory, CIFAR-10 pickle batches)."""

from __future__ import annotations

import pickle
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .arrays import check_labels, to_nchw
from .bundle import DataError

__all__ = ["RawData", "read_cifar10", "read_digits", "read_npz_source"]

Pair = tuple[torch.Tensor, torch.Tensor]


@dataclass
class RawData:
    """Arrays as read: either one `whole` set to split or ready `train`/`val` sets, with what is known about them."""

    provenance: str
    whole: Pair | None = None
    train: Pair | None = None
    val: Pair | None = None
    classes: tuple[str, ...] | None = None
    notes: list[str] = field(default_factory=list)
    stats_normalize: bool = False  # float pixels that still want per-channel normalisation from the train split


def read_digits() -> RawData:
    """scikit-learn's 8×8 digits (1797 images), pixel values 0..16 scaled to [0, 1]."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.from_numpy((d.images / 16.0).astype(np.float32)[:, None])
    y = torch.from_numpy(d.target.astype(np.int64))
    return RawData(
        provenance="scikit-learn load_digits (UCI optical digits, 1797 images 8×8, values 0..16 scaled to [0,1])",
        whole=(x, y), classes=tuple(str(i) for i in range(10)), stats_normalize=True,
    )


def _npz_arrays(path: Path) -> dict[str, np.ndarray]:
    """Read arrays x, y (and classes when present) from an .npz file without unpickling anything."""
    if not path.is_file():
        raise DataError(f"npz file not found: {path}")
    try:
        npz = np.load(path, allow_pickle=False)
        if not isinstance(npz, np.lib.npyio.NpzFile):
            raise DataError(f"{path} is not an .npz archive; expected arrays named x and y")
        with npz:
            missing = [k for k in ("x", "y") if k not in npz.files]
            if missing:
                raise DataError(f"{path} has no array(s) {', '.join(missing)} (arrays present: {', '.join(npz.files)})")
            return {k: npz[k] for k in ("x", "y", "classes") if k in npz.files}
    except DataError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise DataError(f"cannot read {path} as an .npz archive (corrupt, truncated or holds objects): "
                        f"{type(exc).__name__}: {exc}") from exc


def _npz_pair(path: Path, layout: str | None, num_classes: int | None) -> tuple[Pair, str, tuple[str, ...] | None]:
    """Load and validate one .npz file into NCHW tensors."""
    arrays = _npz_arrays(path)
    classes = None
    if "classes" in arrays and arrays["classes"].ndim == 1 and arrays["classes"].dtype.kind == "U":
        classes = tuple(str(c) for c in arrays["classes"])
    x, note = to_nchw(arrays["x"], str(path), layout)
    bound = num_classes or (len(classes) if classes else None)
    y = check_labels(arrays["y"], len(x), str(path), bound)
    return (x, y), f"{path.name}: {note}", classes


def read_npz_source(path: Path, layout: str | None = None) -> RawData:
    """An .npz file with x, y (to be split), or a directory holding train.npz and test.npz."""
    if path.is_dir():
        files = [path / "train.npz", path / "test.npz"]
        missing = [f.name for f in files if not f.is_file()]
        if missing:
            raise DataError(f"npz directory {path} lacks {', '.join(missing)}; it needs train.npz and test.npz")
        train, note_t, classes = _npz_pair(files[0], layout, None)
        val, note_v, _ = _npz_pair(files[1], layout, len(classes) if classes else None)
        if train[0].shape[1:] != val[0].shape[1:] or train[0].dtype != val[0].dtype:
            raise DataError(f"{path}: train.npz images {tuple(train[0].shape[1:])} {train[0].dtype} differ from "
                            f"test.npz images {tuple(val[0].shape[1:])} {val[0].dtype}")
        return RawData(provenance=f"npz directory {path} (train.npz for training, test.npz for validation)",
                       train=train, val=val, classes=classes, notes=[note_t, note_v])
    if not path.exists():
        raise DataError(f"npz source not found: {path} (give an .npz file or a directory with train.npz, test.npz)")
    whole, note, classes = _npz_pair(path, layout, None)
    return RawData(provenance=f"npz file {path} (validation split off)", whole=whole, classes=classes, notes=[note])


def _unpickle(path: Path) -> dict:
    """Read one CIFAR-10 python batch file."""
    if not path.is_file():
        raise DataError(f"CIFAR-10 batch file not found: {path}")
    try:
        # pickle can run arbitrary code: only use cifar10:DIR on trusted files (the official CIFAR-10 download).
        with path.open("rb") as f:
            batch = pickle.load(f, encoding="bytes")
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, ImportError, IndexError) as exc:
        raise DataError(f"cannot read CIFAR-10 batch {path} (corrupt or not a CIFAR pickle): "
                        f"{type(exc).__name__}: {exc}") from exc
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        raise DataError(f"{path} is not a CIFAR-10 batch (needs keys b'data' and b'labels')")
    return batch


def _cifar_pair(paths: list[Path]) -> Pair:
    """Concatenate CIFAR-10 batch files into uint8 NCHW images and int64 labels."""
    xs, ys = [], []
    for path in paths:
        batch = _unpickle(path)
        data = np.asarray(batch[b"data"])
        if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
            raise DataError(f"{path}: b'data' must be uint8 N×3072, got {data.dtype} {data.shape}")
        xs.append(data.reshape(-1, 3, 32, 32))
        ys.append(check_labels(np.asarray(batch[b"labels"], dtype=np.int64), len(data), str(path), 10))
    return torch.from_numpy(np.concatenate(xs)), torch.cat(ys)


def read_cifar10(root: Path) -> RawData:
    """CIFAR-10 python batches (data_batch_1..5 for training, test_batch for validation) in `root`."""
    if (root / "cifar-10-batches-py").is_dir():
        root = root / "cifar-10-batches-py"
    if not root.is_dir():
        raise DataError(f"CIFAR-10 directory not found: {root}")
    train = _cifar_pair([root / f"data_batch_{i}" for i in range(1, 6)])
    val = _cifar_pair([root / "test_batch"])
    classes = None
    meta = root / "batches.meta"
    if meta.is_file():
        names = _unpickle_meta(meta)
        classes = tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names) if names else None
    return RawData(provenance=f"CIFAR-10 python batches in {root} (data_batch_1..5 / test_batch)",
                   train=train, val=val, classes=classes)


def _unpickle_meta(path: Path) -> list | None:
    """Class names from batches.meta, or None when the file does not hold them."""
    try:
        # Trusted files only, as for the batches.
        with path.open("rb") as f:
            meta = pickle.load(f, encoding="bytes")
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, ImportError, IndexError) as exc:
        raise DataError(f"cannot read {path} (corrupt?): {type(exc).__name__}: {exc}") from exc
    names = meta.get(b"label_names") if isinstance(meta, dict) else None
    return list(names) if names is not None and len(names) == 10 else None
