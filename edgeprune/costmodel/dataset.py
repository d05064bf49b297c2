"""Training data for cost models, read from latency tables."""
from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from edgeprune.models.layer_space import LayerSignature
from edgeprune.tables.store import LatencyTable

METRIC_COLUMNS = {"latency": "latency_median_ms", "energy": "energy_mj"}
METRIC_UNITS = {"latency": "ms", "energy": "mJ"}


def metric_column(metric: str) -> str:
    """Table column holding a metric."""
    try:
        return METRIC_COLUMNS[metric]
    except KeyError:
        raise ValueError(f"metric must be one of {sorted(METRIC_COLUMNS)}, got {metric!r}") from None


@dataclass
class LayerSamples:
    """Measured single-layer costs of one signature: X is (n, 2) of (c_in, c_out)."""

    signature: LayerSignature
    X: np.ndarray
    y: np.ndarray


@dataclass
class Selection:
    """Which measurements belong together: one device, runtime and thread count."""

    fingerprint_id: str
    runtime: str = "onnxruntime"
    threads: int = 1

    def where(self) -> dict:
        return {"fingerprint_id": self.fingerprint_id, "runtime": self.runtime, "threads": self.threads}


def reference_scale(table: LatencyTable, sel: Selection) -> float | None:
    """Typical time of the drift reference on this device/runtime/threads (median over all rows)."""
    refs = [r["reference_ms"] for kind in ("layer", "network") for r in table.rows(kind, **sel.where())
            if r["reference_ms"] is not None]
    return float(np.median(refs)) if refs else None


def row_value(row, metric: str, scale: float | None) -> float | None:
    """A row's cost; latency is drift-corrected (ratio to the interleaved reference × its typical time)."""
    if metric == "latency" and scale is not None and row["reference_ratio"] is not None:
        return float(row["reference_ratio"]) * scale
    return row[metric_column(metric)]


def layer_samples(table: LatencyTable, sel: Selection, metric: str) -> dict[str, LayerSamples]:
    """Per-signature samples; repeated points (other settings) are merged by their median."""
    metric_column(metric)
    scale = reference_scale(table, sel)
    values: dict[tuple, list[float]] = defaultdict(list)
    sigs: dict[str, LayerSignature] = {}
    for row in table.rows("layer", **sel.where()):
        value = row_value(row, metric, scale)
        if value is None:
            continue
        sigs.setdefault(row["signature_key"], LayerSignature.from_dict(json.loads(row["signature_json"])))
        values[(row["signature_key"], row["c_in"], row["c_out"])].append(value)
    out: dict[str, list] = defaultdict(list)
    for (key, c_in, c_out), v in values.items():
        out[key].append((c_in, c_out, float(np.median(v))))
    return {k: LayerSamples(sigs[k], np.array([p[:2] for p in pts], dtype=float), np.array([p[2] for p in pts]))
            for k, pts in out.items()}


def network_samples(table: LatencyTable, sel: Selection, architecture_hash: str,
                    metric: str) -> tuple[list[dict[str, int]], np.ndarray]:
    """Whole-network measurements of one architecture: widths and costs in order of first measurement, each the
    median over the calibration passes that measured the same variant (repeats of the dense model stay apart)."""
    metric_column(metric)
    scale = reference_scale(table, sel)
    values: dict[tuple[str, int], list[float]] = {}
    unplanned: dict[str, int] = defaultdict(int)
    for row in table.rows("network", architecture_hash=architecture_hash, **sel.where()):
        value = row_value(row, metric, scale)
        if value is None:
            continue
        plan = json.loads(row["result_json"]).get("plan")
        if plan is None:
            # Rows from before passes were recorded: the n-th row of the same widths was repeat n (plan order).
            repeat = unplanned[row["widths_json"]]
            unplanned[row["widths_json"]] += 1
        else:
            repeat = plan["repeat"]
        values.setdefault((row["widths_json"], repeat), []).append(value)
    widths = [json.loads(w) for w, _ in values]
    return widths, np.array([float(np.median(v)) for v in values.values()], dtype=float)
