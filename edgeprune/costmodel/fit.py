"""Fit a device's cost model for one architecture from its latency table, with a held-out accuracy report."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.linear_model import LinearRegression
from sklearn.utils.validation import check_is_fitted

from edgeprune.costmodel.dataset import METRIC_UNITS, Selection, layer_samples, network_samples, reference_scale
from edgeprune.costmodel.macs import network_macs
from edgeprune.costmodel.metrics import accuracy_report
from edgeprune.costmodel.model import CostModel
from edgeprune.errors import EdgepruneError
from edgeprune.models.layer_space import LayerSpace, architecture_hash
from edgeprune.tables.store import LatencyTable

HELDOUT_EVERY = 3  # every third non-dense variant is held out


class FitError(EdgepruneError):
    """The table lacks what a fit needs."""


class FlopsCostModel(BaseEstimator):
    """The FLOPs baseline: cost = scale·MACs + offset, fitted on the same whole-network data (no parameters)."""

    def fit(self, space: LayerSpace, widths: list[dict[str, int]], y) -> "FlopsCostModel":
        self.space_ = space
        self.reg_ = LinearRegression().fit(self._macs(widths), y)
        return self

    def _macs(self, widths):
        return np.array([[network_macs(self.space_, w)] for w in widths], dtype=float)

    def predict(self, widths):
        check_is_fitted(self, "reg_")
        return self.reg_.predict(self._macs(widths))


@dataclass
class FitResult:
    model: CostModel
    provenance: dict
    report: dict
    heldout_rows: list  # per held-out variant: widths, measured, and each predictor's prediction


def _split(space: LayerSpace, widths: list[dict], y: np.ndarray):
    """Dense repeats (noise floor), training variants and held-out variants."""
    dense = space.dense_widths()
    is_dense = np.array([w == dense for w in widths])
    others = np.flatnonzero(~is_dense)
    heldout = others[np.arange(len(others)) % HELDOUT_EVERY == HELDOUT_EVERY - 1]
    train = np.setdiff1d(np.arange(len(y)), heldout)
    return is_dense, train, heldout


def _noise_cv(y_dense: np.ndarray) -> float | None:
    return float(np.std(y_dense, ddof=1) / np.mean(y_dense)) if len(y_dense) >= 2 else None


def _table_digest(table: LatencyTable, sel: Selection, arch: str) -> str:
    """Hash of the rows a fit used, so a model records exactly which measurements it came from."""
    h = hashlib.sha256()
    for kind, extra in (("layer", {}), ("network", {"architecture_hash": arch})):
        for key in sorted(r["point_key"] for r in table.rows(kind, **sel.where(), **extra)):
            h.update(key.encode())
    return h.hexdigest()[:16]


def fit_from_table(table: LatencyTable, device: str, model_name: str, space: LayerSpace, sel: Selection,
                   metric: str = "latency", source: str = "auto") -> FitResult:
    """Held-out comparison of every predictor, then the requested one (``auto``: the best held-out bilinear one)
    refitted on all variants."""
    arch = architecture_hash(space)
    layers = layer_samples(table, sel, metric)
    widths, y = network_samples(table, sel, arch, metric)
    if not layers and not len(y):
        raise FitError(f"{table.path} has no {metric} measurements of {model_name!r} on fingerprint "
                       f"{sel.fingerprint_id} with {sel.runtime}, {sel.threads} thread(s); run edgeprune calibrate")
    is_dense, train, heldout = _split(space, widths, y)
    report: dict = {"metric": metric, "unit": METRIC_UNITS[metric], "noise_cv": _noise_cv(y[is_dense]),
                    "dense_repeats": int(is_dense.sum()), "network_variants": int(len(y)),
                    "train_variants": int(len(train)), "heldout": {}}
    W = lambda idx: [widths[i] for i in idx]  # noqa: E731
    rows = [{"widths": widths[i], "measured": float(y[i])} for i in heldout]
    if len(heldout) >= 3:
        candidates = {"bilinear_layers": lambda: CostModel("layers").fit(space, layers, W(train), y[train]),
                      "bilinear_network": lambda: CostModel("network").fit(space, layers, W(train), y[train]),
                      "bilinear_both": lambda: CostModel("both").fit(space, layers, W(train), y[train]),
                      "flops": lambda: FlopsCostModel().fit(space, W(train), y[train])}
        for name, make in candidates.items():
            try:
                pred = make().predict(W(heldout))
                report["heldout"][name] = accuracy_report(y[heldout], pred)
                for row, p in zip(rows, pred):
                    row[name] = float(p)
            except ValueError as exc:  # e.g. no layer tables: that predictor cannot be evaluated
                report["heldout"][name] = {"error": str(exc)}
    else:
        report["heldout_note"] = (f"no held-out accuracy: {len(heldout)} of {len(y) - int(is_dense.sum())} non-dense "
                                  f"network variants held out (one in {HELDOUT_EVERY}), 3 needed; calibrate with "
                                  f"--network-variants {3 * HELDOUT_EVERY + 1} or more")
    if source == "auto":
        source = _best_source(report["heldout"], bool(layers), len(y))
    report["source"] = source
    model = CostModel(source).fit(space, layers, widths, y)
    report["feature_spec"] = model.spec_.to_dict()
    report["spec_selection"] = model.spec_report_
    report["layer_fit"] = _layer_fit_report(model, layers)
    prov = _provenance(table, device, model_name, space, sel, metric, arch)
    prov["fit"] = {**{k: v for k, v in report.items() if k != "layer_fit"},
                   "note": "heldout figures come from models fitted without those variants; the saved model "
                           "is then refitted on all of them", "heldout_rows": rows}
    return FitResult(model, prov, report, rows)


def _best_source(heldout: dict, has_layers: bool, n_network: int) -> str:
    """The bilinear source with the best held-out accuracy (±5 %, then Spearman, then median error); without a
    held-out set, both when layer tables and networks exist, else whichever does."""
    scored = {name.removeprefix("bilinear_"): h for name, h in heldout.items()
              if name.startswith("bilinear_") and "error" not in h}
    if scored:
        return max(scored, key=lambda k: (scored[k]["within_5"], scored[k]["spearman"], -scored[k]["median_ape"]))
    if has_layers:
        return "both" if n_network >= 3 else "layers"
    return "network"


def _layer_fit_report(model: CostModel, layers: dict) -> dict:
    out = {}
    for key, m in model.layer_models_.items():
        s = layers[key]
        ape = np.abs(m.predict(s.X) - s.y) / s.y
        ss_res, ss_tot = float(np.sum((m.predict(s.X) - s.y) ** 2)), float(np.sum((s.y - s.y.mean()) ** 2))
        out[key] = {"n": int(len(s.y)), "r2": 1 - ss_res / ss_tot if ss_tot > 0 else None,
                    "mean_ape": float(ape.mean())}
    return out


def _provenance(table: LatencyTable, device: str, model_name: str, space: LayerSpace, sel: Selection,
                metric: str, arch: str) -> dict:
    info = table.device_info(sel.fingerprint_id) or {}
    versions = sorted({r["runtime_version"] for r in table.rows("network", **sel.where())}
                      | {r["runtime_version"] for r in table.rows("layer", **sel.where())})
    return {"metric": metric, "unit": METRIC_UNITS[metric],
            "device": {"name": device, "fingerprint_id": sel.fingerprint_id, "cpu_model": info.get("cpu_model"),
                       "energy_source": _energy_source(table, sel) if metric == "energy" else None},
            "runtime": {"name": sel.runtime, "versions": versions, "threads": sel.threads},
            # Latency fits are in units of this typical reference time (drift-corrected); see dataset.row_value.
            "reference_ms": reference_scale(table, sel) if metric == "latency" else None,
            "model": {"name": model_name, "architecture_hash": arch, "input_shape": list(space.input_shape)},
            "table": {"path": str(table.path), "rows_digest": _table_digest(table, sel, arch)},
            "fitted_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def _energy_source(table: LatencyTable, sel: Selection) -> str | None:
    kinds = {(r["energy_source"], r["energy_kind"]) for r in table.rows("layer", **sel.where())}
    return ", ".join(f"{s} ({k})" for s, k in sorted(kinds, key=str) if s) or None
