"""Compressed-model artifact: channels.json (which channels each group keeps, which blocks are gone) + weights.pt.

Version 2 adds ``blocks_removed``: residual blocks replaced by their identity shortcut. Loading rebuilds the base
model, removes the channels (``kept`` indexes the base model's channels), then the blocks. Version 1 files (no
blocks removed) still load.
"""
from __future__ import annotations

import copy
import json
from collections.abc import Iterable
from pathlib import Path

import torch
import torch.nn as nn

from edgeprune.version import __version__
from edgeprune.errors import EdgepruneError
from edgeprune.files import atomic_open, atomic_write
from edgeprune.models.layer_space import build_layer_space
from edgeprune.models.weights import WeightsError, load_tensor_file
from edgeprune.models.zoo import build_model
from edgeprune.structure.blocks import apply_pruning

FORMAT = "edgeprune-compressed"
VERSION = 2
CHANNELS = "channels.json"
WEIGHTS = "weights.pt"


class ArtifactError(EdgepruneError):
    """A compressed-model directory is missing, corrupt, too new, or does not fit its base model."""


def _portable_spec(spec: str) -> str:
    """Zoo names as they are; `file.py:fn` specs with an absolute path so loading works from any directory."""
    path, sep, fn = spec.rpartition(":")
    if sep and path.endswith(".py"):
        return f"{Path(path).expanduser().resolve()}:{fn}"
    return spec


def save_compressed(model_dir: str | Path, pruned_model: nn.Module, base_spec: str, input_shape,
                    kept: dict[str, list[int]], meta: dict, model_kwargs: dict | None = None,
                    blocks_removed: Iterable[str] = ()) -> Path:
    """Write channels.json + weights.pt describing ``pruned_model`` as ``base_spec`` with ``kept`` channels and
    ``blocks_removed`` replaced by identity."""
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    kept = {str(g): sorted(int(i) for i in idxs) for g, idxs in kept.items()}
    info = {"format": FORMAT, "version": VERSION, "edgeprune_version": __version__,
            "base_model": _portable_spec(base_spec), "model_kwargs": dict(model_kwargs or {}),
            "input_shape": [int(d) for d in input_shape], "kept": kept,
            "widths": {g: len(idxs) for g, idxs in kept.items()}, "blocks_removed": [str(b) for b in blocks_removed],
            "meta": meta}
    text = json.dumps(info, indent=2, sort_keys=True, default=_plain)
    state = {k: v.detach().cpu() for k, v in pruned_model.state_dict().items()}
    with atomic_open(model_dir / WEIGHTS) as f:
        torch.save(state, f)
    atomic_write(model_dir / CHANNELS, text + "\n")
    return model_dir


def _plain(obj):
    """JSON fallback for numpy scalars/arrays and paths in ``meta``."""
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"meta value of type {type(obj).__name__} is not JSON-serialisable")


def read_info(model_dir: str | Path) -> dict:
    """Parse and check channels.json of a compressed-model directory."""
    path = Path(model_dir) / CHANNELS
    if not path.is_file():
        raise ArtifactError(f"{path} not found: {model_dir} holds no compressed model",
                            hint="give the --out directory of `edgeprune compress` (or one CompressResult.save wrote)")
    try:
        info = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(info, dict) or info.get("format") != FORMAT:
        raise ArtifactError(f"{path} is not an {FORMAT} channel spec (format field: "
                            f"{info.get('format') if isinstance(info, dict) else None!r})")
    version = info.get("version")
    if not isinstance(version, int) or version > VERSION:
        raise ArtifactError(f"{path} has format version {version!r}; this edgeprune ({__version__}) "
                            f"reads up to version {VERSION} — upgrade edgeprune")
    missing = [k for k in ("base_model", "input_shape", "kept") if k not in info]
    if missing:
        raise ArtifactError(f"{path} lacks field(s) {', '.join(missing)}")
    if not isinstance(info["input_shape"], list) or not isinstance(info.get("model_kwargs", {}), dict):
        raise ArtifactError(f"{path}: input_shape must be a list and model_kwargs an object")
    kept = info["kept"]
    if not isinstance(kept, dict) or not all(isinstance(v, list) for v in kept.values()):
        raise ArtifactError(f"{path}: 'kept' must map group names to lists of channel indices")
    if version == 1:
        info["blocks_removed"] = []
    blocks = info.get("blocks_removed")
    if not isinstance(blocks, list) or not all(isinstance(b, str) for b in blocks):
        raise ArtifactError(f"{path}: 'blocks_removed' must be a list of block names, got {blocks!r}")
    if "widths" in info and info["widths"] != {g: len(v) for g, v in kept.items()}:
        raise ArtifactError(f"{path}: widths {info['widths']} disagree with the kept indices "
                            f"({ {g: len(v) for g, v in kept.items()} })")
    return info


def _read_state(path: Path) -> dict:
    """Load weights.pt without unpickling arbitrary objects."""
    if not path.is_file():
        raise ArtifactError(f"{path} not found; the compressed model's weights are missing")
    try:
        state = load_tensor_file(path)
    except WeightsError as exc:
        raise ArtifactError(f"{path} cannot be read as a state_dict: {exc}") from None
    if not isinstance(state, dict):
        raise ArtifactError(f"{path} holds a {type(state).__name__}, not a state_dict")
    return state


def load_compressed(model_dir: str | Path, base: nn.Module | None = None) -> tuple[nn.Module, dict]:
    """Rebuild the base model (or copy ``base``, the dense nn.Module it was pruned from), remove the channels and
    then the blocks channels.json drops, load weights.pt strictly; eval mode."""
    model_dir = Path(model_dir)
    info = read_info(model_dir)
    state = _read_state(model_dir / WEIGHTS)
    shape = tuple(info["input_shape"])
    try:
        base, shape = ((copy.deepcopy(base).eval(), shape) if base is not None
                       else build_model(info["base_model"], input_shape=shape, **info.get("model_kwargs", {})))
    except EdgepruneError as exc:
        raise ArtifactError(f"{model_dir}: cannot rebuild base model {info['base_model']!r}: {exc}; a model "
                            "given as an nn.Module loads with edgeprune.load(dir, base=model)") from exc
    space = build_layer_space(base, shape)
    try:
        model = apply_pruning(base, space, info["kept"], info["blocks_removed"])
    except ValueError as exc:
        raise ArtifactError(f"{model_dir / CHANNELS} does not fit {info['base_model']}: {exc}") from exc
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ArtifactError(f"{model_dir / WEIGHTS} does not fit the model described by {CHANNELS}: {exc}") from exc
    return model.eval(), info

