"""Where cost models live: their file names (device, model, input shape, runtime, threads, metric), the folders
searched for them, and the list ``edgeprune models`` shows."""
from __future__ import annotations

import json
from pathlib import Path

from edgeprune.paths import models_dir, models_search_path, safe_name, shipped_models_dir

COST_FORMAT, PLATFORM_FORMAT = "edgeprune-cost-model", "edgeprune-platform-model"


def shape_key(input_shape) -> str:
    """(1, 3, 32, 32) → '1x3x32x32'."""
    return "x".join(str(int(d)) for d in input_shape)


def model_file_name(device: str, model_name: str, runtime: str, threads: int, metric: str, input_shape) -> str:
    """<device>-<model>-<NxCxHxW>-<runtime>-t<threads>-<metric>.json"""
    return f"{safe_name(f'{device}-{model_name}')}-{shape_key(input_shape)}-{runtime}-t{threads}-{metric}.json"


def _legacy_file_name(device: str, model_name: str, runtime: str, threads: int, metric: str) -> str:
    """The name cost models had before it carried the input shape."""
    return f"{safe_name(f'{device}-{model_name}')}-{runtime}-t{threads}-{metric}.json"


def default_model_path(device: str, model_name: str, runtime: str, threads: int, metric: str, input_shape) -> Path:
    """Where ``edgeprune fit`` writes the cost model of this device, model, input shape, runtime and metric."""
    return models_dir() / model_file_name(device, model_name, runtime, threads, metric, input_shape)


def find_model_file(device: str, model_name: str, runtime: str, threads: int, metric: str,
                    input_shape) -> Path | None:
    """The cost model for this key in the search path, or None; a file with the old name (no input shape) counts
    when the input shape it records is this one."""
    name = model_file_name(device, model_name, runtime, threads, metric, input_shape)
    legacy = _legacy_file_name(device, model_name, runtime, threads, metric)
    for folder in models_search_path():
        if (folder / name).is_file():
            return folder / name
        if (folder / legacy).is_file() and _recorded_shape(folder / legacy) == [int(d) for d in input_shape]:
            return folder / legacy
    return None


def find_file(name: str) -> Path | None:
    """The first file called ``name`` in the search path (e.g. a platform model), or None."""
    return next((folder / name for folder in models_search_path() if (folder / name).is_file()), None)


def model_files(pattern: str = "*.json") -> list[Path]:
    """Every file matching ``pattern`` in the search path, a name found earlier hiding the same name later."""
    seen, found = set(), []
    for folder in models_search_path():
        for path in sorted(folder.glob(pattern)) if folder.is_dir() else []:
            if path.name not in seen:
                seen.add(path.name)
                found.append(path)
    return found


def _recorded_shape(path: Path) -> list[int] | None:
    try:
        return list(json.loads(path.read_text()).get("model", {}).get("input_shape") or []) or None
    except (OSError, ValueError, AttributeError):
        return None


def describe(path: Path) -> dict | None:
    """One row of ``edgeprune models`` for a cost or platform model file; None for any other file."""
    try:
        d = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(d, dict) or d.get("format") not in (COST_FORMAT, PLATFORM_FORMAT):
        return None
    device, runtime, model = d.get("device") or {}, d.get("runtime") or {}, d.get("model") or {}
    row = {"file": str(path), "kind": "platform" if d["format"] == PLATFORM_FORMAT else "architecture",
           "device": device.get("name"), "fingerprint_id": device.get("fingerprint_id"),
           "runtime": runtime.get("name"), "threads": runtime.get("threads"), "metric": d.get("metric"),
           "unit": d.get("unit"), "fitted_at": d.get("fitted_at"), "read_only": path.parent == shipped_models_dir()}
    if row["kind"] == "platform":
        report = model.get("report", {}) if isinstance(model, dict) else {}
        return {**row, "model": "(any network)", "input_shape": None, "heldout": None,
                "cv_mean_abs_error": report.get("cv_error_linear")}
    source = d.get("source")
    held = ((d.get("fit") or {}).get("heldout") or {}).get(f"bilinear_{source}")
    held = held if held and "error" not in held else None
    return {**row, "model": model.get("name"), "input_shape": model.get("input_shape"), "source": source,
            "heldout": held and {k: held.get(k) for k in ("n", "within_10", "median_ape", "spearman")}}


def list_models() -> list[dict]:
    """Every cost and platform model edgeprune can find, in search-path order."""
    return [row for row in map(describe, model_files()) if row is not None]
