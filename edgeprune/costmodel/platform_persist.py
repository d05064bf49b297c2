"""Platform models as versioned JSON (never pickled), with the device, runtime and data they came from."""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from edgeprune.costmodel.persist import CostModelError, check_device, read_versioned, write_versioned
from edgeprune.costmodel.platform import PlatformCostModel
from edgeprune.measure.graph_features import FEATURES_VERSION
from edgeprune.paths import models_dir, safe_name

FORMAT = "edgeprune-platform-model"
FORMAT_VERSION = 1


def default_platform_path(device: str, runtime: str, threads: int, metric: str) -> Path:
    """<models dir>/<device>-platform-<runtime>-t<threads>-<metric>.json (where fit --platform writes)"""
    return models_dir() / f"{safe_name(device)}-platform-{runtime}-t{threads}-{metric}.json"


def save(model: PlatformCostModel, provenance: dict, path: str | Path) -> Path:
    """Write atomically (temp file + rename)."""
    doc = {"features_version": FEATURES_VERSION,
           "fitted_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), **provenance,
           "model": model.to_dict()}
    return write_versioned(path, FORMAT, FORMAT_VERSION, doc)


def load(path: str | Path, fingerprint_id: str | None = None) -> tuple[PlatformCostModel, dict]:
    """Read a platform model; refuse another format, a newer version, or another device, saying which."""
    path = Path(path)
    d = read_versioned(path, FORMAT, FORMAT_VERSION, "platform model", "edgeprune fit --platform")
    if d.get("features_version") != FEATURES_VERSION:
        raise CostModelError(f"{path} was fitted on graph features v{d.get('features_version')}, this edgeprune "
                             f"computes v{FEATURES_VERSION}; refit with `edgeprune fit --platform`")
    check_device(path, d, fingerprint_id)
    try:
        return PlatformCostModel.from_dict(d["model"]), d
    except (KeyError, TypeError, ValueError) as exc:
        raise CostModelError(f"{path} is incomplete or damaged ({type(exc).__name__}: {exc})") from exc
