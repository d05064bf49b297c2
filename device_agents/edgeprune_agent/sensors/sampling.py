"""Turn a PowerSource into an EnergySensor: sample in a background thread, integrate with the trapezoid rule."""
from __future__ import annotations

import threading
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

from ..errors import SensorUnavailable
from .base import EnergyReading, EnergySensor, PowerReading, PowerSource

Clock = Callable[[], float]


def integrate(samples: List[Tuple[float, float]]) -> float:
    """Trapezoid integral of (time_s, watts) samples in joules; 0 with fewer than two samples."""
    return sum((t1 - t0) * (p0 + p1) / 2.0 for (t0, p0), (t1, p1) in zip(samples, samples[1:]))


class SampledSensor(EnergySensor):
    """Energy = integral of a power source sampled every `refresh_s` between start() and stop()."""

    kind = "measured"

    def __init__(self, source: PowerSource, interval_s: Optional[float] = None,
                 clock: Clock = time.monotonic):
        self.source = source
        self.name = source.name
        self.refresh_s = source.refresh_s
        self.interval_s = interval_s or source.refresh_s
        self._clock = clock
        self._samples: List[Tuple[float, float]] = []
        self._last: Optional[PowerReading] = None
        self._errors = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._last = source.read()  # fail at construction when the source cannot be read

    def _sample(self) -> None:
        """Read once and append (time, watts); a failed read is counted and skipped."""
        try:
            reading = self.source.read()
        except SensorUnavailable:
            self._errors += 1
            return
        with self._lock:
            self._samples.append((self._clock(), reading.watts))
            self._last = reading

    def _loop(self) -> None:
        """Sample until stopped."""
        while not self._stop.wait(self.interval_s):
            self._sample()

    def start(self) -> None:
        """Take the first sample and start the sampler thread."""
        if self._thread is not None:
            raise RuntimeError(f"{self.name} window already started")
        with self._lock:
            self._samples, self._errors = [], 0
        self.source.begin_window()
        self._sample()
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name=f"{self.name}-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> EnergyReading:
        """Stop sampling, take a last sample and return the integrated energy."""
        if self._thread is None:
            raise RuntimeError(f"{self.name}.stop() called before start()")
        self._stop.set()
        self._thread.join()
        self._thread = None
        self._sample()
        with self._lock:
            samples = list(self._samples)
        if len(samples) < 2:
            raise SensorUnavailable(f"{self.name}: fewer than two power samples in the window")
        duration = samples[-1][0] - samples[0][0]
        joules = integrate(samples)
        params: Dict[str, Any] = {
            **self.source.describe(), "samples": len(samples), "failed_reads": self._errors,
            "interval_s": self.interval_s, "refresh_s": self.refresh_s, "duration_s": duration,
            "mean_power_w": joules / duration if duration > 0 else samples[-1][1],
            **self.source.end_window()}
        if self._last is not None and self._last.rails_w:
            params["last_rails_w"] = dict(self._last.rails_w)
        if self._last is not None and self._last.extra:
            params["last"] = dict(self._last.extra)
        return EnergyReading(joules=joules, source=self.name, kind="measured",
                             method="sampled power, trapezoid integral", params=params)

    def close(self) -> None:
        """Stop the sampler and release the source."""
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
        self.source.close()
