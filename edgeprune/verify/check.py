"""Measure an artifact on a device and set the result beside the cost model's prediction and the budget."""
from __future__ import annotations

from pathlib import Path

from edgeprune.errors import EdgepruneError
from edgeprune.measure.settings import MeasureSettings
from edgeprune.measure.steady import measure_beside_dense
from edgeprune.measurement import Measurement, NoEnergy
from edgeprune.prune.budget import UNITS, parse_budget, resolve_budget
from edgeprune.verify.lookup import find_cost_model, given_cost_model
from edgeprune.verify.precision import is_int8

RUNTIMES = {".onnx": "onnxruntime", ".tflite": "litert"}
DENSE_BESIDE = "dense.onnx"  # compress writes the dense model beside model.onnx
PAIRS = 3


class VerifyError(EdgepruneError):
    """The artifact cannot be verified as asked (unknown format, no energy reading, no dense cost for a budget)."""


def runtime_of(path: Path) -> str:
    """Runtime that loads the artifact, from its suffix."""
    try:
        return RUNTIMES[path.suffix.lower()]
    except KeyError:
        raise VerifyError(f"{path}: unknown artifact type; expected .onnx or .tflite") from None


def model_info(artifact: Path) -> dict | None:
    """channels.json of the compressed-model directory the artifact sits in, if it sits in one."""
    from edgeprune.prune.artifact import CHANNELS, read_info

    return read_info(artifact.parent) if (artifact.parent / CHANNELS).is_file() else None


def measured_value(m: Measurement, metric: str, device: str, runtime: str) -> tuple[float, dict]:
    """The metric's value from a measurement and where it came from."""
    provenance = {"device": device, "runtime": runtime, "runtime_version": m.runtime_version,
                  "fingerprint_id": m.fingerprint_id}
    try:
        value = m.value(metric)
    except NoEnergy:
        raise VerifyError(f"device {device!r} returned no energy reading; verify with --metric latency") from None
    if metric == "latency":
        return value, provenance | {"source": "timer", "statistic": "median"}
    e = m.energy
    return value, provenance | {"source": e.source, "kind": e.kind, "method": e.method,
                                "sensor": e.source if e.kind != "estimate" else "estimate"}


def prediction_warnings(runtime: str, cm_runtime: str | None, int8: bool | None, predicted) -> list[str]:
    """What a prediction does not cover: a cost model fitted on another runtime, or fp32 layers for int8."""
    if predicted is None:
        return []
    out = []
    if cm_runtime and cm_runtime != runtime:
        out.append(f"predicted by a cost model fitted on {cm_runtime}; this artifact runs on {runtime} "
                   f"(calibrate and fit with --runtime {runtime} for a like-for-like prediction)")
    if int8:
        out.append("int8 artifact: the cost model was fitted on fp32 layers, so the prediction is for the fp32 "
                   "model of the same widths")
    return out


def predictions(cost_model, info: dict | None) -> tuple[float | None, float | None, dict | None]:
    """(predicted cost of the artifact's widths, dense cost, per-layer costs) — None where unknown."""
    if cost_model is None:
        return None, None, None
    dense = float(cost_model.predict([{}])[0])
    widths = (info or {}).get("widths")
    if widths is None:
        return None, dense, None
    try:
        layers = cost_model.layer_costs({**cost_model.dense_widths_, **widths})
    except (ValueError, AttributeError):  # fitted from whole networks only: no per-layer breakdown
        layers = None
    return float(cost_model.predict([widths])[0]), dense, layers


def budget_value(budget: str | None, metric: str, dense: float | None) -> float | None:
    """Absolute budget in the metric's unit; a relative one needs the cost model's dense prediction."""
    if budget is None:
        return None
    parsed = parse_budget(budget)
    if parsed.relative and dense is None:
        raise VerifyError(f"budget {budget!r} is relative to the dense model, but no cost model is known for this "
                          f"artifact; give an absolute budget (e.g. 3ms) or --cost-model PATH")
    return resolve_budget(parsed, metric, dense if dense is not None else float("inf"), 0.0).value


def verify(device_name: str, artifact_path: str | Path, budget: str | None = None, metric: str = "latency",
           tolerance: float = 0.03, cost_model_path: str | Path | None = None, threads: int = 1,
           settings: MeasureSettings | None = None, profile: bool = True, cost_model=None) -> dict:
    """Measure ``artifact_path`` on the device; measured vs predicted vs budget, and per-layer times for ONNX.
    ``cost_model``: a (CostModel, provenance) pair to predict with instead of a saved file."""
    # As in compress: a cost model must come from this device (and the artifact's architecture, when known), and
    # the prediction error is taken against the drift-corrected latency when the cost model records its speed.
    from edgeprune.measure.registry import open_device

    if metric not in UNITS:
        raise VerifyError(f"unknown metric {metric!r}; choose one of {sorted(UNITS)}")
    if not tolerance >= 0:
        raise VerifyError(f"--tolerance must be >= 0 (a share of the budget, e.g. 0.03), got {tolerance}")
    path = Path(artifact_path)
    runtime = runtime_of(path)
    data = path.read_bytes()
    info = model_info(path)
    device = open_device(device_name)
    try:
        fingerprint_id = device.info()["fingerprint_id"]
        found = (given_cost_model(*cost_model, info, fingerprint_id) if cost_model is not None else
                 find_cost_model(info, cost_model_path, device_name, fingerprint_id, runtime, threads, metric))
    except EdgepruneError as exc:
        raise VerifyError(str(exc)) from exc
    predicted, dense, layer_pred = predictions(found.model, info)
    int8 = is_int8(data, runtime)
    limit = budget_value(budget, metric, dense)
    wants_profile = profile and runtime == "onnxruntime"
    settings = settings or MeasureSettings(threads=threads)
    m = device.measure(data, runtime, settings, profile=wants_profile)
    measured, provenance = measured_value(m, metric, device_name, runtime)
    reference_ms = found.meta.get("reference_ms")
    beside = _beside_dense(device, path, runtime, settings, budget, metric, reference_ms, dense)
    within = None if limit is None else measured <= limit * (1 + tolerance)
    if beside is not None:  # a relative budget, judged as compress judges it: against dense measured alongside
        within = beside.ratio <= parse_budget(budget).value * (1 + tolerance)
        beside = {"ratio": beside.ratio, "pairs": beside.pairs, "dense_measured": beside.dense.value(metric),
                  "device_loaded_differently": beside.busy}
    return {"artifact": str(path), "device": device_name, "metric": metric, "unit": UNITS[metric][0],
            "measured": measured, "measured_drift_corrected": m.drift_corrected(metric, reference_ms),
            "predicted": predicted, "dense_predicted": dense, "cost_model": found.path,
            "prediction_error": m.prediction_error(predicted, metric, reference_ms),
            "budget": limit, "budget_given": budget, "tolerance": tolerance,
            "within_budget": within, "beside_dense": beside,
            "provenance": provenance, "layers": _layers(m.result.get("profile"), layer_pred),
            "int8": int8, "cost_model_runtime": found.runtime,
            "warnings": prediction_warnings(runtime, found.runtime, int8, predicted)}


def _beside_dense(device, path: Path, runtime: str, settings: MeasureSettings, budget: str | None, metric: str,
                  reference_ms: float | None, dense: float | None):
    """The artifact's cost as a ratio to the dense model measured alongside (median of PAIRS pairs), when the budget
    is relative and compress's dense.onnx sits beside an ONNX artifact; else None."""
    dense_path = path.parent / DENSE_BESIDE
    if (budget is None or not parse_budget(budget).relative or runtime != "onnxruntime" or dense is None
            or not dense_path.is_file() or dense_path == path):
        return None
    model_bytes, dense_bytes = path.read_bytes(), dense_path.read_bytes()
    return measure_beside_dense(lambda: device.measure(model_bytes, runtime, settings),
                                lambda: device.measure(dense_bytes, runtime, settings), metric, reference_ms, dense,
                                pairs=PAIRS)


def _layers(profile: dict | None, predicted: dict | None):
    """Per-layer measured ms (the device's onnxruntime profiler) beside the cost model's per-layer prediction."""
    from edgeprune.verify.profile import layer_times_ms

    if not profile:
        return None  # not asked for, or a runtime/device without a per-node profiler
    measured = layer_times_ms(profile["nodes_ms"])
    names = list(predicted or {}) + [n for n in measured if n not in (predicted or {})]
    return [{"layer": n, "measured_ms": measured.get(n), "predicted": (predicted or {}).get(n)} for n in names]

