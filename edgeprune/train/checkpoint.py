"""Training checkpoints: atomic writes, weights_only-loadable contents, RNG state capture and restore."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch

from edgeprune.errors import EdgepruneError
from edgeprune.files import atomic_open
from edgeprune.models.weights import WeightsError, load_tensor_file

__all__ = ["CHECKPOINT_NAME", "CheckpointError", "load_checkpoint", "restore_rng", "rng_state", "save_checkpoint"]

CHECKPOINT_NAME = "last.pt"


class CheckpointError(EdgepruneError):
    """A training checkpoint is unreadable, incomplete or from a different run."""


def rng_state() -> dict:
    """Python, numpy, torch (and CUDA) RNG states as tensors and plain containers."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    return {
        "python": {"version": version, "state": list(internal), "gauss_next": gauss_next},
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(gauss)},
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def restore_rng(state: dict) -> None:
    """Put back RNG states captured by `rng_state`."""
    py = state["python"]
    random.setstate((py["version"], tuple(py["state"]), py["gauss_next"]))
    npy = state["numpy"]
    np.random.set_state((npy["kind"], npy["keys"].numpy().astype(np.uint32), npy["pos"], npy["has_gauss"],
                         npy["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(state: dict, directory: str | Path) -> Path:
    """Write `state` to directory/last.pt atomically (temp file, fsync, rename); return the path."""
    target = Path(directory) / CHECKPOINT_NAME
    with atomic_open(target) as f:
        torch.save(state, f)
    return target


_REQUIRED = ("model", "optimizer", "scheduler", "epoch", "history", "rng", "config")


def load_checkpoint(path: str | Path) -> dict:
    """Read a checkpoint with weights_only=True; any problem is a CheckpointError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        state = load_tensor_file(path)
    except WeightsError as exc:
        raise CheckpointError(f"checkpoint {exc}; move it away or pass resume=False to start over") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {path} holds {type(state).__name__}, not a training checkpoint dict")
    missing = [k for k in _REQUIRED if k not in state]
    if missing:
        raise CheckpointError(f"checkpoint {path} is not a fine_tune checkpoint (missing {', '.join(missing)})")
    return state


def resume_training(path: Path, config: dict, model: torch.nn.Module, optimizer, scheduler) -> tuple[int, list[dict]]:
    """Load a checkpoint into model/optimizer/scheduler/RNGs; return (completed epochs, history)."""
    state = load_checkpoint(path)
    diffs = [f"{k}: checkpoint {state['config'].get(k)!r} vs now {v!r}"
             for k, v in config.items() if state["config"].get(k) != v]
    if diffs:
        raise CheckpointError(f"checkpoint {path} belongs to a run with other settings ({'; '.join(diffs)}); "
                              "use another checkpoint directory (or resume=False)")
    try:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        restore_rng(state["rng"])
    except (RuntimeError, KeyError, ValueError, TypeError) as exc:
        raise CheckpointError(f"checkpoint {path} does not fit this model/optimizer: {exc}") from exc
    return int(state["epoch"]), list(state["history"])
