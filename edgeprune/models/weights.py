"""Load checkpoints into models with clear errors for missing, corrupt or mismatched files."""

from __future__ import annotations

import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn
from edgeprune.errors import EdgepruneError

__all__ = ["WeightsError", "load_tensor_file", "load_weights", "read_state_dict"]

_SHOW = 5  # how many offending keys to name in an error message


class WeightsError(EdgepruneError):
    """A checkpoint could not be read or does not fit the model."""


_LEGACY_MAGIC = b"\x80\x02\x8a\x0a"  # torch.save's legacy format opens with a pickled 10-byte magic number


def _is_torch_file(path: Path) -> bool:
    """Whether the file has torch.save's layout (a zip holding data.pkl, or the legacy pickle stream)."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            return any(name.endswith("data.pkl") for name in archive.namelist())
    with path.open("rb") as handle:
        return handle.read(len(_LEGACY_MAGIC)) == _LEGACY_MAGIC


def load_tensor_file(path: Path) -> object:
    """torch.load with weights_only=True; a failure is a WeightsError saying what the file is (never advice to
    unpickle arbitrary objects)."""
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    # torch.load raises many unrelated types on garbage input (RuntimeError, EOFError, KeyError, struct.error, ...).
    except Exception as exc:
        torch_file = _is_torch_file(path)
        if torch_file and isinstance(exc, pickle.UnpicklingError) and "Weights only load failed" in str(exc):
            raise WeightsError(
                f"{path} holds Python objects besides tensors, which are never unpickled (that could run "
                "arbitrary code); save the tensors alone with torch.save(model.state_dict(), path)") from None
        said = "" if "weights_only" in str(exc) else f": {exc}"
        kind = "a damaged or truncated torch file" if torch_file else "corrupt, truncated or another kind of file"
        raise WeightsError(f"{path} is not a torch checkpoint ({kind}; {type(exc).__name__}{said})") from None


def _extract(obj: object, path: Path) -> dict[str, torch.Tensor]:
    """Return the tensor state dict from a raw state dict or a {'state_dict'|'model': ...} wrapper."""
    if isinstance(obj, Mapping):
        for key in ("state_dict", "model"):
            if isinstance(obj.get(key), Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not obj:
        raise WeightsError(f"{path} does not contain a state dict (got {type(obj).__name__})")
    tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise WeightsError(f"{path} does not contain a state dict of tensors (keys: {list(obj)[:_SHOW]})")
    return tensors


def _strip_module_prefix(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Remove DataParallel/DDP 'module.' prefixes from every key."""
    out = {}
    for key, value in state.items():
        while key.startswith("module."):
            key = key[len("module."):]
        out[key] = value
    return out


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a checkpoint file into a plain CPU state dict with 'module.' prefixes stripped."""
    path = Path(path)
    return _strip_module_prefix(_extract(load_tensor_file(path), path))


def _listing(keys: list[str]) -> str:
    """Format the first few keys, noting how many were left out."""
    more = f" (+{len(keys) - _SHOW} more)" if len(keys) > _SHOW else ""
    return ", ".join(keys[:_SHOW]) + more


def _check_fit(model: nn.Module, state: dict[str, torch.Tensor], path: Path) -> None:
    """Raise WeightsError naming missing/unexpected keys and shape mismatches."""
    expected = model.state_dict()
    # Old checkpoints predate BatchNorm's num_batches_tracked; load_state_dict fills it in.
    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in expected]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing key(s): {_listing(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected key(s): {_listing(unexpected)}")
    shapes = [
        f"{k} checkpoint {tuple(v.shape)} vs model {tuple(expected[k].shape)}"
        for k, v in state.items()
        if k in expected and v.shape != expected[k].shape
    ]
    if shapes:
        problems.append(f"{len(shapes)} shape mismatch(es): {_listing(shapes)}")
    if problems:
        raise WeightsError(
            f"{path} does not fit {type(model).__name__} (wrong architecture?): " + "; ".join(problems)
        )


def load_weights(model: nn.Module, path: str | Path) -> nn.Module:
    """Load a checkpoint into `model` strictly and return the model."""
    path = Path(path)
    state = read_state_dict(path)
    _check_fit(model, state, path)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise WeightsError(f"{path} could not be loaded into {type(model).__name__}: {exc}") from exc
    return model
