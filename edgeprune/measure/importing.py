"""Import whole-network measurements made elsewhere (a CSV, TFLite benchmark_model logs) with provenance 'imported'."""
from __future__ import annotations

import csv
import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from edgeprune.errors import EdgepruneError
from edgeprune.formats import FORMATS, ExportError, export_model
from edgeprune.measure.graph_features import FEATURES_VERSION, GraphFeatureError, graph_digest, onnx_features
from edgeprune.measurement import Measurement
from edgeprune.tables.store import LatencyTable, canonical, point_key

REQUIRED = ("model", "device", "runtime", "threads", "source")
COLUMNS = (*REQUIRED, "kwargs", "input_shape", "latency_ms", "energy_mj")
PROVENANCE = "imported"


class ImportError_(EdgepruneError):
    """Some rows could not be imported; nothing was written. The message lists every bad line."""


@dataclass
class ImportRow:
    """One validated measurement, with the features of its graph."""

    where: str
    model: str
    kwargs: dict
    input_shape: list[int]
    device: str
    runtime: str
    threads: int
    source: str
    latency_ms: float | None
    energy_mj: float | None
    digest: str
    features: dict = field(default_factory=dict)


def imported_fingerprint(device: str) -> str:
    """A stable fingerprint for a device known only by name (its hardware was never probed by edgeprune)."""
    return "imported-" + hashlib.sha256(device.encode()).hexdigest()[:12]


def _positive(text: str, name: str) -> float | None:
    if text is None or not text.strip():
        return None
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{name} {text!r} is not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive number, got {text!r}")
    return value


def _shape(text: str | None) -> list[int] | None:
    if text is None or not text.strip():
        return None
    parts = [p for p in re.split(r"[,x× ]+", text.strip().strip("()[]")) if p]
    if not parts or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise ValueError(f"input_shape {text!r} must be positive ints like 1,3,32,32")
    return [int(p) for p in parts]


def model_graph(model: str, kwargs: dict, shape: list[int] | None, runtime: str, base: Path) -> tuple[bytes, list[int]]:
    """Bytes of the graph the runtime ran (an .onnx/.tflite file, or a zoo / file.py:fn model exported now)."""
    from edgeprune.models import build_model

    path = (base / model).resolve() if not Path(model).is_absolute() else Path(model)
    suffix = Path(model.rpartition(":")[0] if ".py:" in model else model).suffix
    if suffix in (".onnx", ".tflite"):
        if f".{FORMATS[runtime]}" != suffix:
            raise ValueError(f"{model} is a {suffix} file but runtime {runtime} reads .{FORMATS[runtime]}")
        if not path.is_file():
            raise ValueError(f"model file {path} not found")
        data = path.read_bytes()
        if suffix == ".tflite":
            from edgeprune.measure.tflite_features import tflite_input_shape

            return data, shape or list(tflite_input_shape(data))
        if shape is None:
            raise ValueError("input_shape is required for an .onnx model")
        return data, shape
    if ".py:" in model and not Path(model.rpartition(":")[0]).is_absolute():
        model = f"{(base / model.rpartition(':')[0]).resolve()}:{model.rpartition(':')[2]}"
    net, default_shape = build_model(model, input_shape=shape, **kwargs)
    return export_model(net, tuple(default_shape), runtime), list(default_shape)


def features_for(runtime: str, data: bytes) -> dict:
    if runtime == "litert":
        from edgeprune.measure.tflite_features import tflite_features

        return tflite_features(data)
    return onnx_features(data)


def parse_csv(path: Path) -> tuple[list[ImportRow], list[str]]:
    """Validated rows and 'line N: problem' errors of a measurements CSV."""
    rows, errors = [], []
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        header = reader.fieldnames or []
        missing = [c for c in REQUIRED if c not in header]
        unknown = [c for c in header if c not in COLUMNS]
        if missing or unknown:
            return [], [f"line 1: header lacks {missing} / has unknown columns {unknown}; expected {list(COLUMNS)}"]
        for rec in reader:
            where = f"{path.name} line {reader.line_num}"
            try:
                rows.append(_row(rec, where, path.parent))
            except (ValueError, EdgepruneError, ExportError, GraphFeatureError) as exc:
                errors.append(f"{where}: {exc}")
    if not rows and not errors:
        errors.append(f"{path.name}: no data rows")
    return rows, errors


def _row(rec: dict, where: str, base: Path) -> ImportRow:
    if rec.get(None):
        raise ValueError(f"{len(rec[None])} more field(s) than the header; quote values with commas "
                         '(input_shape "1,3,32,32") or write 1x3x32x32')
    empty = [c for c in REQUIRED if not (rec.get(c) or "").strip()]
    if empty:
        raise ValueError(f"empty {', '.join(empty)}")
    runtime = rec["runtime"].strip()
    if runtime not in FORMATS:
        raise ValueError(f"runtime {runtime!r} is not one of {sorted(FORMATS)}")
    if not rec["threads"].strip().isdigit() or int(rec["threads"]) < 1:
        raise ValueError(f"threads must be a positive integer, got {rec['threads']!r}")
    latency, energy = _positive(rec.get("latency_ms"), "latency_ms"), _positive(rec.get("energy_mj"), "energy_mj")
    if latency is None and energy is None:
        raise ValueError("give latency_ms, energy_mj or both")
    try:
        kwargs = json.loads(rec.get("kwargs") or "{}")
    except json.JSONDecodeError as exc:
        raise ValueError(f"kwargs is not JSON ({exc})") from None
    if not isinstance(kwargs, dict):
        raise ValueError("kwargs must be a JSON object like {\"width_mult\": 0.5}")
    data, shape = model_graph(rec["model"].strip(), kwargs, _shape(rec.get("input_shape")), runtime, base)
    return ImportRow(where, rec["model"].strip(), kwargs, shape, rec["device"].strip(), runtime,
                     int(rec["threads"]), rec["source"].strip(), latency, energy, graph_digest(data),
                     features_for(runtime, data))


def parse_benchmark_log(path: Path, device: str, source: str, models_dir: Path | None) -> ImportRow:
    """One measurement from a TFLite ``benchmark_model`` log; the .tflite it ran is looked up by file name."""
    from edgeprune_agent.benchmark_model import BenchmarkOutputError, latency_from_run, parse_benchmark_output

    text = path.read_text(errors="replace")
    lines = text.splitlines()
    graph = next(((i + 1, m.group(1)) for i, line in enumerate(lines) if (m := re.search(r"Graph: \[(.*?)\]", line))),
                 None)
    if graph is None:
        raise ValueError(f"{path.name}: no 'Graph: [...]' line; is this benchmark_model output?")
    threads = next((int(m.group(1)) for line in lines
                    if (m := re.search(r"(?:Num threads|#threads used for CPU inference): \[(\d+)\]", line))), None)
    if threads is None:
        raise ValueError(f"{path.name}: no 'Num threads: [N]' line")
    try:
        latency = latency_from_run(parse_benchmark_output(text)["run"])["median"]
    except BenchmarkOutputError as exc:
        raise ValueError(f"{path.name}: {exc}") from None
    name = Path(graph[1]).name
    local = (models_dir or path.parent) / name
    if not local.is_file():
        raise ValueError(f"{path.name} line {graph[0]}: the model it ran, {name}, is not in {local.parent}; "
                         "pass --models-dir with the .tflite files")
    data = local.read_bytes()
    from edgeprune.measure.tflite_features import tflite_input_shape

    return ImportRow(f"{path.name} line {graph[0]}", str(local), {}, list(tflite_input_shape(data)), device, "litert",
                     threads, source, latency, None, graph_digest(data), features_for("litert", data))


def store_rows(table: LatencyTable, rows: list[ImportRow], origin: str) -> int:
    """Write every row in one transaction; returns how many were new (re-imports are skipped)."""
    now = datetime.now(timezone.utc).isoformat()
    added = 0
    with table.transaction():
        for row in rows:
            fid = imported_fingerprint(row.device)
            table.record_device(row.device, {"fingerprint_id": fid, "name": row.device, "imported": True,
                                             "runtime_versions": {row.runtime: "imported"}, "cpu_model": "unknown"})
            key = point_key("network", PROVENANCE, fid, row.runtime, row.threads, row.model, row.kwargs,
                            row.input_shape, row.latency_ms, row.energy_mj, row.source)
            lat = row.latency_ms or 0.0  # the column is NOT NULL: 0 marks an energy-only import
            result = {"latency_ms": {"median": lat, "mean": None, "p10": None, "p90": None, "std": None,
                                     "min": None, "n": None, "cv": None, "run_cv": None},
                      "energy_mj": None if row.energy_mj is None else
                      {"per_inference": row.energy_mj, "source": PROVENANCE, "kind": PROVENANCE},
                      "runtime": {"name": row.runtime, "version": PROVENANCE, "threads": row.threads},
                      "settings": {"provenance": PROVENANCE}, "finished_at": now, "model_sha256": row.digest,
                      "graph_features": row.features, "features_version": FEATURES_VERSION, "kwargs": row.kwargs,
                      "imported": {"source": row.source, "from": origin, "where": row.where,
                                   "latency_measured": row.latency_ms is not None}}
            result = Measurement.from_result(result)
            prov = {"device_name": row.device, "fingerprint_id": fid, "input_shape": row.input_shape,
                    "provenance": PROVENANCE}
            added += table.add_network(key, prov, row.model, row.digest[:16], {}, result)
    return added


def describe(rows: list[ImportRow]) -> dict:
    """Counts per device/runtime/threads of what an import holds."""
    out: dict[str, int] = {}
    for r in rows:
        k = canonical([r.device, r.runtime, r.threads])
        out[k] = out.get(k, 0) + 1
    return {"rows": len(rows), "by_device_runtime_threads": {k: v for k, v in sorted(out.items())}}
