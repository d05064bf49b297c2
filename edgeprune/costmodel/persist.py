"""Cost models as versioned JSON (never pickled), with the provenance needed to refuse a wrong match."""
from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path

import numpy as np

from edgeprune.version import __version__
from edgeprune.costmodel.bilinear import BilinearLayerModel
from edgeprune.costmodel.features import FeatureSpec
from edgeprune.costmodel.model import CostModel
from edgeprune.errors import EdgepruneError
from edgeprune.models.layer_space import Layer, LayerSignature

FORMAT = "edgeprune-cost-model"
FORMAT_VERSION = 1


class CostModelError(EdgepruneError):
    """A cost model file is unreadable, too new, or belongs to another architecture or device."""


def to_json_dict(model: CostModel, provenance: dict) -> dict:
    """Everything needed to predict, plus where it came from (device, runtime, table, fit metrics)."""
    return {
        "format": FORMAT, "format_version": FORMAT_VERSION, "edgeprune_version": __version__,
        **provenance,
        "source": model.source,
        "feature_spec": model.spec_.to_dict(), "spec_selection": model.spec_report_,
        "dense_widths": model.dense_widths_,
        "layers": [{**asdict(layer), "signature_key": key} for _, key, layer in model.layers_],
        "layer_models": {k: m.to_dict() for k, m in sorted(model.layer_models_.items())},
        "network": {"scale": model.scale_, "offset": model.offset_, "correction": model.correction_,
                    "prior_scale": model.prior_scale_, "floor": model.floor_},
    }


def from_json_dict(d: dict) -> CostModel:
    """Rebuild a fitted CostModel from its JSON form."""
    model = CostModel(d["source"])
    layers = []
    for item in d["layers"]:
        sig = LayerSignature.from_dict(item["signature"])
        layers.append((item["name"], item["signature_key"],
                       Layer(item["name"], sig, item["c_in"], item["c_out"], item["in_group"], item["out_group"])))
    model.layers_ = layers
    model.dense_widths_ = {k: int(v) for k, v in d["dense_widths"].items()}
    model.spec_ = FeatureSpec(**d["feature_spec"])
    model.spec_report_ = d.get("spec_selection", {})
    model.layer_models_ = {k: BilinearLayerModel.from_dict(v) for k, v in d["layer_models"].items()}
    net = d["network"]
    model.scale_, model.offset_, model.prior_scale_ = net["scale"], net["offset"], net["prior_scale"]
    model.correction_ = net["correction"]
    model.floor_ = float(net.get("floor", 0.0))
    return model


def save(model: CostModel, provenance: dict, path: str | Path) -> Path:
    """Write atomically (temp file + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(to_json_dict(model, provenance), indent=1, default=_plain))
    os.replace(tmp, path)
    return path


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


def check_device(path: Path, d: dict, fingerprint_id: str | None) -> None:
    """CostModelError when the file ``d`` read from ``path`` was fitted on another device than ``fingerprint_id``."""
    fid = d.get("device", {}).get("fingerprint_id")
    if fingerprint_id and fid != fingerprint_id:
        raise CostModelError(f"{path} was fitted on device {d['device'].get('name')!r} (fingerprint {fid}), "
                             f"not this device ({fingerprint_id}); calibrate and fit on this device")


def load(path: str | Path, architecture_hash: str | None = None,
         fingerprint_id: str | None = None) -> tuple[CostModel, dict]:
    """Read a cost model; refuse one fitted for another architecture or device, saying which."""
    path = Path(path)
    d = read_versioned(path, FORMAT, FORMAT_VERSION, "cost model", "edgeprune fit")
    arch = d.get("model", {}).get("architecture_hash")
    if architecture_hash and arch != architecture_hash:
        raise CostModelError(f"{path} was fitted for model {d['model'].get('name')!r} (architecture {arch}), "
                             f"not this one ({architecture_hash}); fit one for this model")
    check_device(path, d, fingerprint_id)
    try:
        return from_json_dict(d), d
    except (KeyError, TypeError, ValueError) as exc:
        raise CostModelError(f"{path} is incomplete or damaged ({type(exc).__name__}: {exc})") from exc
