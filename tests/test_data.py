"""Tests for edgeprune.data: every source type, layout detection, splits, augmentation and error messages."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from edgeprune.data import (
    CIFAR_PRETRAINED_NORM,
    DataBundle,
    DataError,
    EpochSampler,
    augment_batch,
    load_data,
    stratified_order,
)

CIFAR_JPEG = Path("/work/shared/data/cifar10-jpeg")


@pytest.fixture(scope="module")
def digits() -> DataBundle:
    return load_data("digits")


def _images(n: int, shape: tuple[int, ...], dtype=np.uint8, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if dtype == np.uint8:
        return rng.integers(0, 256, size=(n, *shape), dtype=np.uint8)
    return rng.random((n, *shape), dtype=np.float32)


def _save_npz(path: Path, x: np.ndarray, y: np.ndarray, **extra) -> Path:
    np.savez(path, x=x, y=y, **extra)
    return path


def _all(loader) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ys = zip(*[(b[0], b[1]) for b in loader])
    return torch.cat(xs), torch.cat(ys)


# --- digits -----------------------------------------------------------------------------------------------------


def test_digits_shapes_split_and_normalisation(digits):
    assert digits.input_shape == (1, 1, 8, 8) and digits.num_classes == 10
    assert len(digits.train.dataset) == 1617 and len(digits.val.dataset) == 180
    x, y = _all(digits.train)
    assert x.dtype == torch.float32 and y.dtype == torch.int64
    assert abs(float(x.mean())) < 0.01 and abs(float(x.std()) - 1.0) < 0.01  # stats of the training split
    assert digits.normalization["source"].startswith("per-channel")
    counts = torch.bincount(digits.val.dataset.tensors[1], minlength=10)
    assert counts.min() >= 17 and counts.max() <= 19  # stratified: 180 / 10 classes
    assert "augmentation: none" in digits.provenance and "load_digits" in digits.provenance


def test_digits_split_is_deterministic_per_seed(digits):
    again = load_data("digits", seed=0)
    other = load_data("digits", seed=1)
    assert torch.equal(digits.val.dataset.tensors[0], again.val.dataset.tensors[0])
    assert not torch.equal(digits.val.dataset.tensors[0], other.val.dataset.tensors[0])


def test_train_and_val_do_not_overlap(digits):
    train = {row.numpy().tobytes() for row in digits.train.dataset.tensors[0]}
    val = [row.numpy().tobytes() for row in digits.val.dataset.tensors[0]]
    assert sum(v in train for v in val) <= 2  # load_digits has a couple of exact duplicate images


def test_stratified_order_prefixes_are_balanced():
    y = torch.tensor([0] * 50 + [1] * 30 + [2] * 20)
    order = stratified_order(y, seed=3)
    assert sorted(order.tolist()) == list(range(100))
    assert torch.bincount(y[order[:10]], minlength=3).tolist() == [5, 3, 2]
    assert torch.equal(order, stratified_order(y, seed=3))


# --- npz ---------------------------------------------------------------------------------------------------------


def test_npz_file_nhwc_uint8(tmp_path):
    x, y = _images(60, (32, 32, 3)), np.repeat(np.arange(3), 20)
    bundle = load_data(f"npz:{_save_npz(tmp_path / 'd.npz', x, y)}", val_fraction=0.25, batch_size=16)
    assert bundle.input_shape == (1, 3, 32, 32) and bundle.num_classes == 3
    assert len(bundle.train.dataset) == 45 and len(bundle.val.dataset) == 15
    assert any("read as NHWC" in note for note in bundle.notes)
    assert bundle.normalization["mean"] == CIFAR_PRETRAINED_NORM["mean"]
    assert "random crop" in bundle.provenance
    # Validation images are the stored pixels, transposed to NCHW, scaled and normalised (no augmentation).
    stored = bundle.val.dataset.tensors[0]
    vx, _ = next(iter(bundle.val))
    mean = torch.tensor(CIFAR_PRETRAINED_NORM["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR_PRETRAINED_NORM["std"]).view(1, 3, 1, 1)
    assert torch.allclose(vx, (stored.float() / 255 - mean) / std, atol=1e-6)
    assert any(np.array_equal(stored[0].numpy(), img.transpose(2, 0, 1)) for img in x)


def test_npz_file_nchw_float_is_used_as_stored(tmp_path):
    x, y = _images(40, (1, 16, 16), np.float32), np.arange(40) % 4
    bundle = load_data(f"npz:{_save_npz(tmp_path / 'f.npz', x, y)}")
    assert bundle.input_shape == (1, 1, 16, 16) and bundle.num_classes == 4
    assert bundle.normalization is None
    assert any("read as NCHW" in note for note in bundle.notes)
    assert any("no augmentation for 16×16" in note for note in bundle.notes)
    assert "augmentation: none" in bundle.provenance
    vx, _ = next(iter(bundle.val))
    assert torch.equal(vx, bundle.val.dataset.tensors[0])


def test_npz_ambiguous_layout_is_reported_and_can_be_overridden(tmp_path):
    path = _save_npz(tmp_path / "amb.npz", _images(20, (3, 8, 3)), np.arange(20) % 2)
    guessed = load_data(f"npz:{path}")
    assert guessed.input_shape == (1, 3, 3, 8)
    assert any("ambiguous" in note and "NHWC" in note for note in guessed.notes)
    given = load_data(f"npz:{path}?layout=nchw")
    assert given.input_shape == (1, 3, 8, 3)
    assert load_data(f"npz:{path}", layout="NCHW").input_shape == (1, 3, 8, 3)


def test_npz_directory_with_classes_and_limit(tmp_path):
    classes = np.array(["a", "b", "c", "d"])
    _save_npz(tmp_path / "train.npz", _images(80, (32, 32, 3)), np.repeat(np.arange(4), 20), classes=classes)
    _save_npz(tmp_path / "test.npz", _images(40, (32, 32, 3), seed=1), np.repeat(np.arange(4), 10), classes=classes)
    full = load_data(f"npz:{tmp_path}")
    assert len(full.train.dataset) == 80 and len(full.val.dataset) == 40  # test.npz is the validation set
    assert full.classes == ("a", "b", "c", "d") and full.num_classes == 4
    small = load_data(f"npz:{tmp_path}?limit=20")
    assert len(small.train.dataset) == 20 and len(small.val.dataset) == 20
    assert torch.bincount(small.val.dataset.tensors[1]).tolist() == [5, 5, 5, 5]
    assert torch.equal(load_data(f"npz:{tmp_path}", limit=20).val.dataset.tensors[0], small.val.dataset.tensors[0])


@pytest.mark.parametrize(
    ("arrays", "match"),
    [
        ({"x": _images(10, (8, 8, 3)).astype(np.int32), "y": np.zeros(10, int)}, "dtype int32"),
        ({"x": _images(10, (8, 8, 3)), "y": np.zeros(10, np.float32)}, "integer class indices"),
        ({"x": _images(10, (8, 8, 3)), "y": np.zeros(9, int)}, "10 examples but y has 9"),
        ({"x": _images(10, (8, 8, 3)), "y": np.full(10, -1)}, "negative label -1"),
        ({"x": _images(10, (2, 8, 8, 3)), "y": np.zeros(10, int)}, "got shape \\(10, 2, 8, 8, 3\\)"),
        ({"x": _images(10, (8, 8, 3)), "y": np.zeros((10, 2), int)}, "1-D class indices"),
        ({"x": np.full((10, 1, 8, 8), np.nan, np.float32), "y": np.zeros(10, int)}, "NaN"),
        ({"x": _images(10, (8, 8, 3)), "y": np.arange(10) % 3, "classes": np.array(["a", "b"])}, "out of range 0..1"),
        ({"images": _images(10, (8, 8, 3)), "y": np.zeros(10, int)}, "no array\\(s\\) x .*arrays present: images, y"),
    ],
)
def test_npz_bad_arrays_are_named(tmp_path, arrays, match):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(DataError, match=match) as info:
        load_data(f"npz:{path}")
    assert str(path) in str(info.value)


def test_npz_unreadable_files(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_data(f"npz:{tmp_path / 'missing.npz'}")
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"PK\x03\x04 this is not really a zip archive")
    with pytest.raises(DataError, match=f"cannot read {garbage}"):
        load_data(f"npz:{garbage}")
    objects = tmp_path / "objects.npz"
    np.savez(objects, x=np.array([object()] * 4, dtype=object), y=np.zeros(4, int))
    with pytest.raises(DataError, match="holds objects"):
        load_data(f"npz:{objects}")
    single = tmp_path / "single.npy"
    np.save(single, np.zeros(3))
    with pytest.raises(DataError, match="not an .npz archive"):
        load_data(f"npz:{single}")
    (tmp_path / "dir").mkdir()
    _save_npz(tmp_path / "dir" / "train.npz", _images(4, (8, 8, 3)), np.zeros(4, int))
    with pytest.raises(DataError, match="lacks test.npz"):
        load_data(f"npz:{tmp_path / 'dir'}")


def test_bad_source_strings_and_options(tmp_path):
    path = _save_npz(tmp_path / "d.npz", _images(20, (8, 8, 1)), np.arange(20) % 2)
    with pytest.raises(DataError, match="unknown data source 'mnist'"):
        load_data("mnist")
    with pytest.raises(DataError, match="unknown option\\(s\\) size"):
        load_data(f"npz:{path}?size=3")
    with pytest.raises(DataError, match="limit must be an integer"):
        load_data(f"npz:{path}?limit=ten")
    with pytest.raises(DataError, match="val_fraction"):
        load_data(f"npz:{path}", val_fraction=1.0)
    with pytest.raises(DataError, match="layout must be"):
        load_data(f"npz:{path}?layout=hwc")
    with pytest.raises(DataError, match="1 means and 1 positive stds"):
        load_data(f"npz:{path}", normalize=((0.5, 0.5), (0.2, 0.2)))
    with pytest.raises(DataError, match="batch_size"):
        load_data(f"npz:{path}", batch_size=0)


# --- CIFAR-10 python batches ------------------------------------------------------------------------------------


def _fake_cifar(root: Path, per_batch: int = 10) -> Path:
    rng = np.random.default_rng(0)
    root.mkdir(parents=True)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in names:
        batch = {b"data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
                 b"labels": list(rng.integers(0, 10, per_batch)), b"batch_label": name.encode()}
        (root / name).write_bytes(pickle.dumps(batch))
    meta = {b"label_names": [f"class{i}".encode() for i in range(10)]}
    (root / "batches.meta").write_bytes(pickle.dumps(meta))
    return root


def test_cifar10_pickle_batches(tmp_path):
    root = _fake_cifar(tmp_path / "cifar-10-batches-py")
    bundle = load_data(f"cifar10:{tmp_path}", augment=False)  # the parent directory is accepted too
    assert bundle.input_shape == (1, 3, 32, 32) and bundle.num_classes == 10
    assert len(bundle.train.dataset) == 50 and len(bundle.val.dataset) == 10
    assert bundle.classes[3] == "class3"
    test = pickle.loads((root / "test_batch").read_bytes())
    x, y = bundle.val.dataset.tensors
    assert torch.equal(x[0, 1].reshape(-1), torch.from_numpy(test[b"data"][0, 1024:2048]))  # R, G, B planes
    assert y.tolist() == [int(v) for v in test[b"labels"]]


def test_cifar10_missing_and_corrupt_batches(tmp_path):
    root = _fake_cifar(tmp_path / "c")
    (root / "data_batch_3").unlink()
    with pytest.raises(DataError, match="data_batch_3"):
        load_data(f"cifar10:{root}")
    root = _fake_cifar(tmp_path / "d")
    (root / "data_batch_2").write_bytes(b"\x80\x04garbage")
    with pytest.raises(DataError, match=f"cannot read CIFAR-10 batch {root / 'data_batch_2'}"):
        load_data(f"cifar10:{root}")


# --- module:function -------------------------------------------------------------------------------------------

USER_SOURCE = '''
import torch
from torch.utils.data import DataLoader, TensorDataset

def loaders(batch_size=4):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(24, 2, 6, 6, generator=g)
    y = torch.arange(24) % 5
    return DataLoader(TensorDataset(x, y), batch_size=batch_size), DataLoader(TensorDataset(x, y), batch_size=7)

def with_classes():
    train, val = loaders()
    return train, val, 12

def broken():
    raise RuntimeError("no data here")

def wrong():
    return 42
'''


def test_module_function_from_file(tmp_path):
    path = tmp_path / "user_data.py"
    path.write_text(USER_SOURCE)
    bundle = load_data(f"{path}:loaders", batch_size=6)
    assert bundle.input_shape == (1, 2, 6, 6) and bundle.num_classes == 5
    assert bundle.train.batch_size == 6  # load_data passed the batch_size its signature names
    assert any("inferred" in note for note in bundle.notes)
    assert load_data(f"{path}:with_classes").num_classes == 12
    with pytest.raises(DataError, match="raised RuntimeError: no data here"):
        load_data(f"{path}:broken")
    with pytest.raises(DataError, match="must return"):
        load_data(f"{path}:wrong")
    with pytest.raises(DataError, match="no function 'nope'"):
        load_data(f"{path}:nope")
    with pytest.raises(DataError, match="data file not found"):
        load_data(f"{tmp_path / 'absent.py'}:loaders")
    with pytest.raises(DataError, match="do not apply"):
        load_data(f"{path}:loaders", limit=3)


def test_module_function_dotted_module(tmp_path, monkeypatch):
    (tmp_path / "mydatapkg").mkdir()
    (tmp_path / "mydatapkg" / "__init__.py").write_text("")
    (tmp_path / "mydatapkg" / "src.py").write_text(USER_SOURCE)
    monkeypatch.syspath_prepend(str(tmp_path))
    bundle = load_data("mydatapkg.src:loaders")
    assert bundle.input_shape == (1, 2, 6, 6) and bundle.name == "mydatapkg.src:loaders"
    with pytest.raises(DataError, match="cannot import module 'mydatapkg.nothere'"):
        load_data("mydatapkg.nothere:loaders")


# --- augmentation and sampling ---------------------------------------------------------------------------------


def test_augment_batch_shape_and_seeded_determinism():
    x = torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8)
    torch.manual_seed(5)
    a = augment_batch(x)
    torch.manual_seed(5)
    b = augment_batch(x)
    assert a.shape == x.shape and a.dtype == torch.uint8 and torch.equal(a, b)
    assert not torch.equal(a, augment_batch(x))


def test_augment_flip_and_crop_semantics():
    x = torch.arange(2 * 1 * 4 * 4, dtype=torch.float32).view(2, 1, 4, 4)
    flipped = augment_batch(x, pad=0, flip=True, generator=torch.Generator().manual_seed(0))
    for i in range(2):
        assert torch.equal(flipped[i], x[i]) or torch.equal(flipped[i], x[i].flip(-1))
    cropped = augment_batch(x, pad=1, flip=False, generator=torch.Generator().manual_seed(1))
    padded = torch.nn.functional.pad(x, (1, 1, 1, 1))
    for i in range(2):
        windows = [padded[i, :, r:r + 4, c:c + 4] for r in range(3) for c in range(3)]
        assert any(torch.equal(cropped[i], w) for w in windows)


def test_training_batches_augmented_validation_batches_not(tmp_path):
    x, y = _images(32, (32, 32, 3)), np.arange(32) % 2
    path = _save_npz(tmp_path / "a.npz", x, y)
    plain = load_data(f"npz:{path}", augment=False, batch_size=32)
    aug = load_data(f"npz:{path}", augment=True, batch_size=32)
    plain.train.sampler.set_epoch(0)
    aug.train.sampler.set_epoch(0)
    px, py = next(iter(plain.train))
    ax, ay = next(iter(aug.train))
    assert torch.equal(py, ay) and px.shape == ax.shape and not torch.equal(px, ax)
    assert torch.equal(next(iter(plain.val))[0], next(iter(aug.val))[0])


def test_epoch_sampler_orders():
    sampler = EpochSampler(50, seed=2)
    first, second = list(sampler), list(sampler)
    assert sorted(first) == list(range(50)) and first != second
    sampler.set_epoch(0)
    assert list(sampler) == first


@pytest.mark.skipif(not (CIFAR_JPEG / "test.npz").is_file(), reason="shared CIFAR-10 JPEG copy absent")
def test_cifar_jpeg_directory_layout():
    bundle = load_data(f"npz:{CIFAR_JPEG}?limit=200")
    assert bundle.input_shape == (1, 3, 32, 32) and bundle.num_classes == 10 and bundle.classes[0] == "airplane"
    assert torch.bincount(bundle.val.dataset.tensors[1]).tolist() == [20] * 10
