"""``fit --platform`` and ``predict``'s fall-back to the platform model: the device's model of any network."""
from __future__ import annotations

import hashlib
import time
from pathlib import Path

from rich.table import Table

from edgeprune.cli.output import Output
from edgeprune.costmodel import platform_persist
from edgeprune.costmodel.dataset import METRIC_UNITS, Selection, reference_scale
from edgeprune.costmodel.fit import FitError
from edgeprune.costmodel.platform import PlatformCostModel
from edgeprune.costmodel.platform_data import load_platform_set, network_features
from edgeprune.paths import default_table
from edgeprune.tables.store import LatencyTable


def fit_platform(o: Output, device: str, metric: str, runtime: str, threads: int, table: Path | None,
                 out: Path | None, residual: str) -> None:
    """Fit the platform model from every network of this device in the table (measured and imported)."""
    path = table or default_table(device)
    if not Path(path).is_file():
        raise FitError(f"no table at {path}; run `edgeprune calibrate --platform` or `edgeprune import` first")
    if metric not in METRIC_UNITS:
        raise ValueError(f"--metric must be one of {sorted(METRIC_UNITS)}, got {metric!r}")
    with LatencyTable(path) as tbl:
        fid = tbl.fingerprint_of(device)
        if fid is None:
            raise FitError(f"{path} has no measurements from device {device!r}")
        o.log(f"reading networks of {device} ({runtime}, {threads} thread(s)) and their graph features…")
        sel = Selection(fid, runtime, threads)
        data = load_platform_set(tbl, sel, metric)
        info = tbl.device_info(fid) or {}
        ref = reference_scale(tbl, sel) if metric == "latency" else None
    if len(data.y) < 5:
        raise FitError(f"{path} has {len(data.y)} usable {metric} network measurement(s) for {device} with "
                       f"{runtime} at {threads} thread(s); a platform model needs at least 5 "
                       "(`edgeprune calibrate --platform` measures a varied set)")
    model = PlatformCostModel(residual).fit(data.features, data.y, groups=data.groups, noise_cv=data.noise_cv)
    prov = {"metric": metric, "unit": METRIC_UNITS[metric],
            "device": {"name": device, "fingerprint_id": fid, "cpu_model": info.get("cpu_model"),
                       "imported": bool(info.get("imported"))},
            "runtime": {"name": runtime, "threads": threads}, "table": str(path),
            # latency is fitted in units of this typical reference time (drift-corrected), like the tables' models
            "reference_ms": ref,
            "networks": {"n": len(data.y), "by_source": data.sources, "families": sorted(set(data.groups)),
                         "noise_cv": data.noise_cv, "skipped": data.skipped}}
    saved = platform_persist.save(model, prov, out or platform_persist.default_platform_path(device, runtime,
                                                                                             threads, metric))
    o.emit({"platform_model": str(saved), **prov, "fit": model.report_})
    r = model.report_
    o.print(f"platform model from {r['n_networks']} networks {data.sources} of {len(set(data.groups))} "
            f"architecture(s); {r['n_columns']} cost terms, ridge {r['alpha']:g}")
    o.print(f"  cross-validated mean |error| ({r['cv_folds']}, capped at 50 %): linear {r['cv_error_linear']:.1%}"
            + (f", with boosted residual {r['cv_error_with_residual']:.1%}" if "cv_error_with_residual" in r else "")
            + f" → residual: {r['residual']}")
    for w in r["warnings"]:
        o.warn(w)
    for s in data.skipped:
        o.log(f"[yellow]skipped:[/] {s}")
    terms = Table("term", "coefficient", title=f"largest cost terms ({METRIC_UNITS[metric]})")
    top = sorted(model.terms().items(), key=lambda kv: -abs(kv[1]))[:12]
    for name, value in top:
        terms.add_row(name, f"{value:.4g}")
    o.print(terms)
    o.print(f"saved {saved}")


def platform_predict(o: Output, path: Path, device: str, model: str, input_shape: tuple, widths: dict,
                     runtime: str, threads: int) -> None:
    """Predict from the platform model (no per-architecture model exists), saying so."""
    platform, meta = platform_persist.load(path)
    if meta["device"]["name"] != device:
        raise ValueError(f"{path} belongs to device {meta['device']['name']!r}, not {device!r}")
    extra = ""
    file_part = model.rpartition(":")[0]
    if file_part.endswith(".py") and Path(file_part).is_file():
        extra = "#" + hashlib.sha256(Path(file_part).read_bytes()).hexdigest()[:16]
    t0 = time.perf_counter()
    feats = network_features(model, {}, widths, input_shape, runtime, extra)
    dense = network_features(model, {}, {}, input_shape, runtime, extra) if widths else feats
    value, dense_value = (float(v) for v in platform.predict([feats, dense]))
    took = (time.perf_counter() - t0) * 1e3
    fit = meta["model"].get("report", {})
    result = {"predicted": value, "dense_predicted": dense_value, "ratio_to_dense": value / dense_value,
              "metric": meta["metric"], "unit": meta["unit"], "widths": widths, "predictor": "platform",
              "provenance": {"cost_model": str(path), "device": meta["device"], "runtime": meta["runtime"],
                             "fitted_at": meta["fitted_at"], "networks": meta["networks"],
                             "cv_error": fit.get("cv_error_linear")},
              "predict_ms": took}
    o.emit(result)
    o.log(f"no cost model fitted for {model} on {device}: using the platform model {path} "
            f"({meta['networks']['n']} networks of {len(meta['networks']['families'])} architecture(s), "
            f"cross-validated mean |error| {fit.get('cv_error_linear', float('nan')):.1%})")
    o.print(f"predicted {meta['metric']}: [bold]{value:.4g} {meta['unit']}[/] ({value / dense_value:.0%} of dense "
            f"{dense_value:.4g} {meta['unit']}) on {device}, {runtime}, {threads} thread(s)")
