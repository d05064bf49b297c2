"""Energy per inference from a real sensor: idle before/after, repeated load windows, median, marginal and total."""
from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Dict, List, Optional

from .sensors.base import EnergyReading, EnergySensor

STEADY_GOVERNORS = ("performance", "userspace")


@dataclass(frozen=True)
class EnergyProtocol:
    """How energy is measured: `windows` load windows of >= max(10 x sensor refresh, min_window_s)."""

    windows: int = 3
    min_window_s: float = 0.5
    idle_s: Optional[float] = None  # default: one window length

    def __post_init__(self) -> None:
        if self.windows < 1 or not self.min_window_s > 0 or (self.idle_s is not None and not self.idle_s > 0):
            raise ValueError(f"invalid energy protocol {self}: need windows >= 1 and positive durations")

    def window_s(self, sensor: EnergySensor) -> float:
        """Length of one load window for this sensor."""
        return max(10.0 * sensor.refresh_s, self.min_window_s)


def _duration(reading: EnergyReading, wall_s: float) -> float:
    """Integration interval of a sampled reading, else the wall time of the window."""
    return float(reading.params.get("duration_s") or wall_s)


def idle_power_w(sensor: EnergySensor, seconds: float) -> float:
    """Mean power with nothing running, over `seconds`."""
    t0 = time.monotonic()
    sensor.start()
    time.sleep(seconds)
    reading = sensor.stop()
    duration = _duration(reading, time.monotonic() - t0)
    return reading.joules / duration


def load_window(sensor: EnergySensor, run_fn: Callable[[], object], seconds: float) -> Dict[str, Any]:
    """Run the model back to back for `seconds` inside one sensor window."""
    count = 0
    sensor.start()
    t0 = time.monotonic()
    while True:
        run_fn()
        count += 1
        if time.monotonic() - t0 >= seconds:
            break
    wall = time.monotonic() - t0
    reading = sensor.stop()
    return {"reading": reading, "duration_s": _duration(reading, wall), "inferences": count}


def _clock_state(conditions: Dict[str, Any]) -> Dict[str, Any]:
    """The part of the conditions that says which clocks were running."""
    return {"governor": conditions.get("governor"), "cpu_freq_mhz": conditions.get("cpu_freq_mhz")}


def measure_energy(run_fn: Callable[[], object], sensor: EnergySensor, protocol: EnergyProtocol,
                   conditions_fn: Callable[[], Dict[str, Any]]) -> Dict[str, Any]:
    """Idle power before, `protocol.windows` load windows, idle after; per-inference total and marginal (mJ)."""
    window = protocol.window_s(sensor)
    idle_s = protocol.idle_s or window
    clocks_before = _clock_state(conditions_fn())
    idle_before = idle_power_w(sensor, idle_s)
    loads = [load_window(sensor, run_fn, window) for _ in range(protocol.windows)]
    idle_after = idle_power_w(sensor, idle_s)
    clocks_after = _clock_state(conditions_fn())
    idle = (idle_before + idle_after) / 2.0
    rows: List[Dict[str, Any]] = []
    for load in loads:
        joules, duration, count = load["reading"].joules, load["duration_s"], load["inferences"]
        rows.append({"duration_s": duration, "inferences": count, "joules": joules,
                     "mean_power_w": joules / duration,
                     "total_mj": joules / count * 1000.0,
                     "marginal_mj": (joules - idle * duration) / count * 1000.0})
    total = statistics.median(r["total_mj"] for r in rows)
    last: EnergyReading = loads[-1]["reading"]
    governor = clocks_before["governor"]
    clock_note = None
    if governor not in STEADY_GOVERNORS:
        clock_note = (f"governor {governor or 'unknown'}: clocks may differ between idle and load, so the "
                      "marginal figure includes the clock change; pin clocks (performance) for a clean idle")
    return {
        "per_inference": total, "total_per_inference": total,
        "marginal_per_inference": statistics.median(r["marginal_mj"] for r in rows),
        "idle_power_w": idle, "idle_power_before_w": idle_before, "idle_power_after_w": idle_after,
        "load_power_w": statistics.median(r["mean_power_w"] for r in rows),
        "source": last.source, "kind": last.kind,
        "method": (f"{last.method}; median of {len(rows)} windows >= {window:g} s (>= 10x sensor refresh "
                   f"{sensor.refresh_s:g} s); idle power measured {idle_s:g} s before and after, subtracted "
                   "for the marginal figure"),
        "params": dict(last.params), "windows": rows, "protocol": asdict(protocol),
        "idle_clocks": {"before": clocks_before, "after": clocks_after, "note": clock_note},
    }
