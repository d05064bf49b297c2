"""One measurement of a model on a device, typed: the one reader of the result JSON every device returns."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from edgeprune.errors import EdgepruneError

METRICS = ("latency", "energy")


class NoEnergy(EdgepruneError):
    """The device returned no energy reading (no sensor, and no estimate asked for)."""


@dataclass(frozen=True)
class LatencyStats:
    """Per-inference latency in ms; a runtime that reports no percentiles leaves them None."""

    median: float
    mean: float | None = None
    p10: float | None = None
    p90: float | None = None
    std: float | None = None
    min: float | None = None
    n: int | None = None
    cv: float | None = None
    run_cv: float | None = None


@dataclass(frozen=True)
class Energy:
    """Energy per inference in mJ, with what produced it (``kind``: measured, estimate or imported)."""

    per_inference: float
    source: str | None = None
    kind: str | None = None
    method: str | None = None

    @property
    def label(self) -> str:
        """Where the number came from, in words."""
        if self.kind == "estimate":
            return f"estimate ({self.method}, no power sensor)"
        return f"{self.source} sensor (measured)"


@dataclass(frozen=True)
class Measurement:
    """What a device measured; ``result`` is its JSON exactly as sent (stored, and read for per-device extras)."""

    # reference_ratio: the model's median over a fixed reference model's median, timed interleaved with it; times
    # the table's typical reference time it gives the latency on a machine of typical speed (drift-corrected).

    latency: LatencyStats
    energy: Energy | None
    runtime: str
    runtime_version: str | None
    threads: int | None
    reference_ms: float | None = None
    reference_ratio: float | None = None
    conditions_before: dict = field(default_factory=dict)
    conditions_after: dict = field(default_factory=dict)
    fingerprint_id: str | None = None
    result: dict = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_result(cls, result: dict[str, Any]) -> Measurement:
        """Parse a device's schema-1 result; ValueError naming the part that is missing or malformed."""
        try:
            lat = result["latency_ms"]
            latency = LatencyStats(**{k: lat.get(k) for k in LatencyStats.__dataclass_fields__})
            if not isinstance(latency.median, (int, float)):
                raise ValueError(f"latency_ms.median is {latency.median!r}, not a number")
            e = result.get("energy_mj")
            energy = None if not e else Energy(float(e["per_inference"]), e.get("source"), e.get("kind"),
                                               e.get("method"))
            ref = result.get("reference") or {}
            rt = result["runtime"]
            return cls(latency, energy, rt["name"], rt.get("version"), rt.get("threads"),
                       ref.get("median_ms"), ref.get("ratio"), result.get("conditions_before") or {},
                       result.get("conditions_after") or {}, (result.get("device") or {}).get("fingerprint_id"),
                       result)
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"not a measurement result ({type(exc).__name__}: {exc})") from exc

    def annotated(self, **extra: Any) -> Measurement:
        """The same measurement with ``extra`` keys added to its stored result (e.g. the calibration plan slot)."""
        return replace(self, result={**self.result, **extra})

    def value(self, metric: str) -> float:
        """The metric as measured: median latency (ms) or energy per inference (mJ)."""
        if metric == "latency":
            return float(self.latency.median)
        if metric != "energy":
            raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
        if self.energy is None:
            raise NoEnergy("the device returned no energy reading; use --metric latency")
        return float(self.energy.per_inference)

    def drift_corrected(self, metric: str, reference_scale_ms: float | None) -> float | None:
        """Latency at the table's typical machine speed (reference ratio × ``reference_scale_ms``); None for energy
        or when either is unknown."""
        if metric != "latency" or not reference_scale_ms or self.reference_ratio is None:
            return None
        return float(self.reference_ratio) * float(reference_scale_ms)

    def comparable(self, metric: str, reference_scale_ms: float | None) -> float:
        """The value a cost model's prediction is compared with: drift-corrected where possible, else as measured."""
        corrected = self.drift_corrected(metric, reference_scale_ms)
        return self.value(metric) if corrected is None else corrected

    def prediction_error(self, predicted: float | None, metric: str, reference_scale_ms: float | None) -> float | None:
        """Relative error of a prediction against this measurement (comparable value / predicted − 1)."""
        if not predicted:
            return None
        return self.comparable(metric, reference_scale_ms) / predicted - 1

    def source(self, metric: str, device: str) -> str:
        """Where the metric's value came from, in words."""
        if metric == "energy" and self.energy is not None:
            return self.energy.label
        return f"{device} {self.runtime} timer (measured)"
