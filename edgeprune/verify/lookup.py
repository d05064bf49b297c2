"""The cost model that predicts an artifact: given, fitted for its device/model/runtime, or found by architecture."""
from __future__ import annotations

from pathlib import Path

from edgeprune.errors import EdgepruneError

RUNTIMES = ("onnxruntime", "litert")


def find_cost_model(info: dict | None, path, device: str, runtime: str, threads: int, metric: str):
    """(cost model, its path, the runtime it was fitted for), or (None, None, None).

    Without ``path``: the one fitted for this device, model and runtime, then one on the other runtime; then, as
    channels.json records a `file.py:fn` model by its absolute path while fit keyed it by the spec as typed, any
    cost model of this device whose architecture is the artifact's base model.
    """
    from edgeprune.costmodel import persist
    from edgeprune.costmodel.store import find_model_file

    if path is not None:
        if not Path(path).is_file():
            raise EdgepruneError(f"cost model {path} not found; fit one with `edgeprune fit` or leave out "
                                 "--cost-model")
        model, meta = persist.load(path)
        return model, str(path), (meta.get("runtime") or {}).get("name")
    if info is None:
        return None, None, None
    order = [runtime] + [r for r in RUNTIMES if r != runtime]
    for rt in order:
        candidate = find_model_file(device, info["base_model"], rt, threads, metric, info["input_shape"])
        if candidate is not None:
            return persist.load(candidate)[0], str(candidate), rt
    return _by_architecture(info, device, order, threads, metric)


def _by_architecture(info: dict, device: str, order: list[str], threads: int, metric: str):
    from edgeprune.costmodel import persist
    from edgeprune.costmodel.persist import CostModelError
    from edgeprune.costmodel.store import model_files

    files = {rt: model_files(f"*-{rt}-t{threads}-{metric}.json") for rt in order}
    if not any(files.values()):
        return None, None, None
    arch = _architecture(info)
    for rt in order:
        for candidate in files[rt]:
            try:
                model, meta = persist.load(candidate, architecture_hash=arch)
            except CostModelError:
                continue
            if (meta.get("device") or {}).get("name") == device:
                return model, str(candidate), rt
    return None, None, None


def _architecture(info: dict) -> str | None:
    """Architecture hash of the artifact's base model (what a cost model records); None if it cannot be built."""
    from edgeprune.models.layer_space import architecture_hash, build_layer_space
    from edgeprune.models.zoo import build_model

    try:
        net, shape = build_model(info["base_model"], input_shape=info["input_shape"], **info.get("model_kwargs", {}))
    except EdgepruneError:
        return None
    return architecture_hash(build_layer_space(net, shape))
