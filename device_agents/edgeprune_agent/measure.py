"""Measure one model: load it, time it, read energy, and build the result dict."""
from __future__ import annotations

import hashlib
import math
import os
import socket
import statistics
import time
from datetime import datetime, timezone
from typing import Any, Callable, Dict, List, Optional, Tuple

from .conditions import conditions
from .energy import EnergyProtocol, measure_energy
from .errors import ModelInvalid
from .fingerprint import fingerprint_id
from .profile import profile_onnx
from .runtimes import load_model, runtime_version
from .sensors.base import EnergySensor
from .reference import NAME as REFERENCE_NAME, load_reference
from .timing import latency_stats, timed_runs, timed_runs_with_reference, warm_up

SCHEMA_VERSION = 1


MAX_WARMUP = 10_000
MAX_REPEATS = 100_000
MAX_DURATION_S = 300.0


def max_threads() -> int:
    """Largest thread count a job may ask for: this device's logical CPUs."""
    return os.cpu_count() or 1


def limits() -> Dict[str, Dict[str, Any]]:
    """Allowed range of every measurement setting (documented in the API and enforced with 400)."""
    return {"threads": {"min": 1, "max": max_threads()}, "warmup": {"min": 0, "max": MAX_WARMUP},
            "min_repeats": {"min": 1, "max": MAX_REPEATS},
            "min_duration_s": {"min_exclusive": 0, "max": MAX_DURATION_S},
            "max_duration_s": {"min_exclusive": 0, "max": MAX_DURATION_S}}


def validate_settings(threads: int, warmup: int, min_repeats: int, min_duration_s: float,
                      max_duration_s: float) -> None:
    """Raise ValueError naming the allowed range when a measurement setting is out of range."""
    def is_int(value: Any) -> bool:
        return isinstance(value, int) and not isinstance(value, bool)

    for label, value, low, high in (("threads", threads, 1, max_threads()), ("warmup", warmup, 0, MAX_WARMUP),
                                    ("min_repeats", min_repeats, 1, MAX_REPEATS)):
        if not is_int(value) or not low <= value <= high:
            raise ValueError(f"{label} must be an integer in [{low}, {high}], got {value!r}")
    for label, value in (("min_duration_s", min_duration_s), ("max_duration_s", max_duration_s)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                or not 0 < value <= MAX_DURATION_S:
            raise ValueError(f"{label} must be a number in (0, {MAX_DURATION_S:g}] seconds, got {value!r}")
    if max_duration_s < min_duration_s:
        raise ValueError(f"max_duration_s ({max_duration_s}) must be >= min_duration_s ({min_duration_s})")


def _utc_now() -> str:
    """Current UTC time as ISO-8601 with microseconds."""
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def _timed_with_energy(sensor: Optional[EnergySensor], timed: Callable[[], List[float]]
                       ) -> Tuple[List[float], Optional[Dict[str, Any]]]:
    """Run the timed loop inside the estimate's window; return the samples and the per-inference energy."""
    if sensor is None or sensor.kind != "estimate":
        return timed(), None
    sensor.start()
    try:
        samples = timed()
    finally:
        reading = sensor.stop()
    energy = {"per_inference": reading.joules / len(samples) * 1000.0, "source": reading.source,
              "kind": reading.kind, "method": reading.method, "params": dict(reading.params)}
    return samples, energy


def _reference_view(samples: List[float], ref: List[float]) -> Optional[Dict[str, Any]]:
    """Median of the interleaved reference and the model's time as a multiple of it (drift-free)."""
    if not ref:
        return None
    ref_median = float(statistics.median(ref))
    return {"name": REFERENCE_NAME, "median_ms": ref_median, "n": len(ref),
            "ratio": float(statistics.median(samples)) / ref_median}


def measure_model(model_bytes: bytes, runtime: str = "onnxruntime", threads: int = 1,
                  warmup: int = 10, min_repeats: int = 30, min_duration_s: float = 0.5,
                  max_duration_s: float = 60.0, sensor: Optional[EnergySensor] = None,
                  sysfs_root: str = "/", bin_dir: Optional[str] = None,
                  energy_protocol: Optional[EnergyProtocol] = None, reference: bool = True,
                  profile: bool = False) -> Dict[str, Any]:
    """Measure one model's latency and, with a sensor, energy (real sensors: energy.py protocol); schema-1 dict.

    ``profile``: also time every node with onnxruntime's profiler (after the latency runs, so it cannot skew them).
    """
    validate_settings(threads, warmup, min_repeats, min_duration_s, max_duration_s)
    check_profile(runtime, profile)
    if not model_bytes:
        raise ModelInvalid("the model is empty (0 bytes)")
    model_bytes = bytes(model_bytes)
    started_at, wall_start = _utc_now(), time.perf_counter()
    model = load_model(runtime, model_bytes, threads)
    before = conditions(sysfs_root, bin_dir)
    # Warm-ups and profiling share half of max_duration_s, so the whole job fits job_deadline_s.
    warm_up(model.run, warmup, max_duration_s / 4)
    ref_model = load_reference(runtime, threads) if reference else None
    ref_samples: List[float] = []
    if ref_model is None:
        samples, energy = _timed_with_energy(
            sensor, lambda: timed_runs(model.run, min_repeats, min_duration_s, max_duration_s))
    else:
        warm_up(ref_model.run, warmup, max_duration_s / 8)

        def timed() -> List[float]:
            got, ref = timed_runs_with_reference(model.run, ref_model.run, min_repeats, min_duration_s,
                                                 max_duration_s)
            ref_samples.extend(ref)
            return got

        samples, energy = _timed_with_energy(sensor, timed)
        if energy is not None:
            # The estimate's CPU-time window also covered the reference runs: keep the model's share.
            share = sum(samples) / (sum(samples) + sum(ref_samples))
            energy["per_inference"] *= share
            energy["params"]["model_time_share"] = share
    if sensor is not None and sensor.kind != "estimate":
        energy = measure_energy(model.run, sensor, energy_protocol or EnergyProtocol(),
                                lambda: conditions(sysfs_root, bin_dir))
    after = conditions(sysfs_root, bin_dir)
    result = {
        "schema": SCHEMA_VERSION,
        "latency_ms": latency_stats(samples),
        "reference": _reference_view(samples, ref_samples),
        "energy_mj": energy,
        "runtime": {"name": runtime, "version": runtime_version(runtime), "threads": threads},
        "settings": {"warmup": warmup, "min_repeats": min_repeats,
                     "min_duration_s": float(min_duration_s), "max_duration_s": float(max_duration_s)},
        "inputs": {name: dict(spec) for name, spec in model.inputs.items()},
        "model_sha256": hashlib.sha256(model_bytes).hexdigest(),
        "conditions_before": before,
        "conditions_after": after,
        "device": {"fingerprint_id": fingerprint_id(sysfs_root), "hostname": socket.gethostname()},
        "started_at": started_at,
        "finished_at": _utc_now(),
        "wall_s": time.perf_counter() - wall_start,
    }
    if profile:
        nodes_ms, runs = profile_onnx(model_bytes, threads=threads, max_s=max_duration_s / 8)
        result["profile"] = {"nodes_ms": nodes_ms, "runs": runs,
                             "source": "onnxruntime profiler (basic graph optimizations), median per node"}
    return result


def check_profile(runtime: str, profile: bool) -> None:
    """Per-node profiles come from onnxruntime's profiler; LiteRT's Python API has none."""
    if profile and runtime != "onnxruntime":
        raise ValueError(f"per-node profiling needs runtime onnxruntime, not {runtime!r} (LiteRT's Python API "
                         "has no per-op profiler)")
