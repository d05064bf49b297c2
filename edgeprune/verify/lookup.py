"""The cost model that predicts an artifact, checked as compress checks it (this device, this architecture)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from edgeprune.errors import EdgepruneError

if TYPE_CHECKING:
    from edgeprune.costmodel.model import CostModel

RUNTIMES = ("onnxruntime", "litert")


@dataclass
class Found:
    """A cost model, its file, the runtime it was fitted for and its provenance (all None/empty: none found)."""

    model: CostModel | None = None
    path: str | None = None
    runtime: str | None = None
    meta: dict = field(default_factory=dict)


def find_cost_model(info: dict | None, path, device: str, fingerprint_id: str, runtime: str, threads: int,
                    metric: str) -> Found:
    """The cost model for this artifact, or an empty ``Found``.

    ``path`` given: that file, refused (CostModelError) when fitted for another device or architecture. Without:
    the one fitted for this device, model and runtime, then one on the other runtime; then, as channels.json
    records a `file.py:fn` model by its absolute path while fit keyed it by the spec as typed, any cost model of
    this device whose architecture is the artifact's base model. Files that fail the checks are passed over.
    """
    from edgeprune.costmodel.persist import CostModelError
    from edgeprune.costmodel.store import find_model_file  # sklearn and torch load only when verify runs

    arch = _architecture(info) if info is not None else None
    if path is not None:
        if not Path(path).is_file():
            raise EdgepruneError(f"cost model {path} not found; fit one with `edgeprune fit` or leave out "
                                 "--cost-model")
        return _found(path, arch, fingerprint_id)
    if info is None:
        return Found()
    order = [runtime] + [r for r in RUNTIMES if r != runtime]
    for rt in order:
        candidate = find_model_file(device, info["base_model"], rt, threads, metric, info["input_shape"])
        if candidate is not None:
            try:
                return _found(candidate, arch, fingerprint_id)
            except CostModelError:
                continue
    return _by_architecture(arch, device, fingerprint_id, order, threads, metric)


def given_cost_model(model: CostModel, meta: dict, info: dict | None, fingerprint_id: str) -> Found:
    """A cost model given with its provenance, refused (CostModelError) as a file would be: fitted for another
    device, or for another architecture than the artifact's base model."""
    from edgeprune.costmodel.persist import check_provenance

    arch = _architecture(info) if info is not None else None
    check_provenance(meta.get("path", "the given cost model"), meta, arch, fingerprint_id)
    return Found(model, meta.get("path"), (meta.get("runtime") or {}).get("name"), meta)


def _found(path, arch: str | None, fingerprint_id: str) -> Found:
    from edgeprune.costmodel.model import CostModel

    model, meta = CostModel.load(path, architecture_hash=arch, fingerprint_id=fingerprint_id)
    return Found(model, str(path), (meta.get("runtime") or {}).get("name"), meta)


def _by_architecture(arch: str | None, device: str, fingerprint_id: str, order: list[str], threads: int,
                     metric: str) -> Found:
    from edgeprune.costmodel.persist import CostModelError
    from edgeprune.costmodel.store import model_files

    files = {rt: model_files(f"*-{rt}-t{threads}-{metric}.json") for rt in order}
    if arch is None or not any(files.values()):
        return Found()
    for rt in order:
        for candidate in files[rt]:
            try:
                found = _found(candidate, arch, fingerprint_id)
            except CostModelError:
                continue
            if (found.meta.get("device") or {}).get("name") == device:
                return found
    return Found()


def _architecture(info: dict) -> str | None:
    """Architecture hash of the artifact's base model (what a cost model records); None if it cannot be built."""
    from edgeprune.models.layer_space import architecture_hash, build_layer_space
    from edgeprune.models.zoo import build_model

    try:
        net, shape = build_model(info["base_model"], input_shape=info["input_shape"], **info.get("model_kwargs", {}))
    except EdgepruneError:
        return None
    return architecture_hash(build_layer_space(net, shape))
