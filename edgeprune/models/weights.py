"""Load checkpoints into models with clear errors for missing, corrupt or mismatched files."""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn
from edgeprune.errors import EdgepruneError

__all__ = ["WeightsError", "load_weights", "read_state_dict"]

_SHOW = 5  # how many offending keys to name in an error message


class WeightsError(EdgepruneError):
    """A checkpoint could not be read or does not fit the model."""


def _torch_load(path: Path) -> object:
    """torch.load with weights_only=True, turning every failure into a WeightsError."""
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "Weights only load failed" in str(exc):
            raise WeightsError(
                f"{path} holds Python objects besides tensors and will not be unpickled (weights_only=True); "
                "re-save it with torch.save(model.state_dict(), path)"
            ) from exc
        raise WeightsError(f"{path} is not a readable PyTorch checkpoint (corrupt or not a torch file): {exc}") from exc
    # torch.load raises many unrelated types on garbage input (RuntimeError, EOFError, KeyError, struct.error, ...).
    except Exception as exc:
        raise WeightsError(
            f"{path} is not a readable PyTorch checkpoint (corrupt, truncated or not a torch file): "
            f"{type(exc).__name__}: {exc}"
        ) from exc


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
    return _strip_module_prefix(_extract(_torch_load(path), path))


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
