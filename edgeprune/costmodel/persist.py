"""Cost-model files: versioned JSON (never pickled), written atomically, with the provenance checks that refuse a
model fitted for another architecture or device."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from edgeprune.version import __version__
from edgeprune.errors import EdgepruneError
from edgeprune.files import atomic_write


class CostModelError(EdgepruneError):
    """A cost model file is unreadable, too new, or belongs to another architecture or device."""


def write_versioned(path: str | Path, fmt: str, version: int, doc: dict) -> Path:
    """Write ``doc`` under a format header, atomically."""
    header = {"format": fmt, "format_version": version, "edgeprune_version": __version__}
    return atomic_write(path, json.dumps({**header, **doc}, indent=1, default=_plain))


def _plain(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def read_versioned(path: Path, fmt: str, version: int, what: str, refit: str) -> dict:
    """A versioned JSON file of format ``fmt``; CostModelError for an unreadable, foreign or newer one."""
    try:
        d = json.loads(path.read_text())
    except OSError as exc:
        raise CostModelError(f"cannot read {what} {path}: {exc.strerror}") from exc
    except json.JSONDecodeError as exc:
        raise CostModelError(f"{path} is not valid JSON ({exc}); refit with `{refit}`") from exc
    if not isinstance(d, dict) or d.get("format") != fmt:
        raise CostModelError(f"{path} is not an edgeprune {what}")
    if d.get("format_version", 0) > version:
        raise CostModelError(f"{path} has format version {d['format_version']}, newer than this edgeprune "
                             f"supports ({version}); upgrade edgeprune")
    return d


def check_device(path: str | Path, d: dict, fingerprint_id: str | None) -> None:
    """CostModelError when the file ``d`` read from ``path`` was fitted on another device than ``fingerprint_id``."""
    fid = (d.get("device") or {}).get("fingerprint_id")
    if fingerprint_id and fid != fingerprint_id:
        raise CostModelError(f"{path} was fitted on device {d['device'].get('name')!r} (fingerprint {fid}), "
                             f"not this device ({fingerprint_id}); calibrate and fit on this device")


def check_provenance(path: str | Path, d: dict, architecture_hash: str | None, fingerprint_id: str | None) -> None:
    """CostModelError when ``d`` was fitted for another architecture or on another device (None: not checked)."""
    arch = (d.get("model") or {}).get("architecture_hash")
    if architecture_hash and arch != architecture_hash:
        raise CostModelError(f"{path} was fitted for model {d['model'].get('name')!r} (architecture {arch}), "
                             f"not this one ({architecture_hash}); fit one for this model")
    check_device(path, d, fingerprint_id)
