"""Training data for the platform model: every whole-network row of a device, with its graph's features."""
from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from edgeprune.costmodel.dataset import Selection, reference_scale, row_value
from edgeprune.formats import export_model
from edgeprune.measure.graph_features import FEATURES_VERSION, cached_spec_features, store_spec_features
from edgeprune.measure.importing import features_for
from edgeprune.tables.store import LatencyTable, canonical

Progress = Callable[[int, int], None]


@dataclass
class PlatformSet:
    """One row per distinct network (median over its repeats and passes)."""

    features: list[dict] = field(default_factory=list)
    y: list[float] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)
    sources: dict[str, int] = field(default_factory=dict)
    noise_cv: float | None = None
    skipped: list[str] = field(default_factory=list)


def spec_key(model: str, kwargs: dict, widths: dict, input_shape, runtime: str) -> str:
    """Cache key of a rebuildable network's features."""
    return canonical(["network", model, kwargs, widths, list(input_shape), runtime])


def network_features(model: str, kwargs: dict, widths: dict, input_shape, runtime: str, version: str = "") -> dict:
    """Features of a zoo / file.py network at ``widths`` (exported once, then cached by description;
    ``version`` tells edits of a user's model file apart)."""
    key = spec_key(model + version, kwargs, widths, input_shape, runtime)
    cached = cached_spec_features(key)
    if cached is not None:
        return cached
    from edgeprune.measure.platform_plan import NetworkSpec, build_network

    net, shape = build_network(NetworkSpec(model, model, kwargs, widths, tuple(input_shape)))
    feats = features_for(runtime, export_model(net, shape, runtime))
    store_spec_features(key, feats)
    return feats


def load_platform_set(table: LatencyTable, sel: Selection, metric: str,
                      progress: Progress | None = None) -> PlatformSet:
    """Features and median cost of every network measured (or imported) for one device, runtime and threads."""
    scale = reference_scale(table, sel) if metric == "latency" else None
    values: dict[str, list[float]] = defaultdict(list)
    info: dict[str, tuple] = {}
    out = PlatformSet()
    rows = list(table.rows("network", **sel.where()))
    for i, row in enumerate(rows):
        result = json.loads(row["result_json"])
        value = row_value(row, metric, scale)
        if value is None or value <= 0:  # energy not measured, or a latency-less (energy-only) import
            continue
        kwargs = result.get("kwargs") or {}
        ident = canonical([row["model"], kwargs, row["widths_json"], row["input_shape"], row["model_sha256"]
                           if row["provenance"] == "imported" else None])
        values[ident].append(float(value))
        if ident not in info:
            info[ident] = (row, result, kwargs)
        if progress:
            progress(i + 1, len(rows))
    spreads = []
    for ident, vals in values.items():
        row, result, kwargs = info[ident]
        # features stored with the row count only when this edgeprune computes them the same way
        feats = result.get("graph_features") if result.get("features_version") == FEATURES_VERSION else None
        if feats is None:
            try:
                feats = network_features(row["model"], kwargs, json.loads(row["widths_json"]),
                                         json.loads(row["input_shape"]), sel.runtime)
            except Exception as exc:  # a user model file may be gone or broken: skip that network, say so
                stale = (f" (the graph features stored with it are out of date, this edgeprune computes "
                         f"v{FEATURES_VERSION}: import it again)") if "graph_features" in result else ""
                out.skipped.append(f"{row['model']}: {type(exc).__name__}: {exc}{stale}")
                continue
        out.features.append(feats)
        out.y.append(float(np.median(vals)))
        out.groups.append(result.get("family") or row["model"])
        src = row["provenance"] or "measured"
        out.sources[src] = out.sources.get(src, 0) + 1
        if len(vals) > 1:
            spreads.append(float(np.std(vals) / np.mean(vals)))
    out.noise_cv = float(np.median(spreads)) if spreads else None
    return out
