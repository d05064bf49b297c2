"""Energy estimate for hosts without a power sensor: process CPU time x watts per busy core."""
from __future__ import annotations

import time
from typing import Optional

import psutil

from .base import EnergyReading, EnergySensor

DEFAULT_WATTS_PER_BUSY_CORE = 10.0
DEFAULT_NOTE = "no power sensor on this host"


class CpuTimeEstimateSensor(EnergySensor):
    """Estimates energy as (user + system CPU seconds of a process, default this one) x watts_per_busy_core."""

    name = "estimate"
    kind = "estimate"

    def __init__(self, watts_per_busy_core: float = DEFAULT_WATTS_PER_BUSY_CORE,
                 note: str = DEFAULT_NOTE, process: Optional[psutil.Process] = None):
        if not watts_per_busy_core > 0:
            raise ValueError(f"watts_per_busy_core must be > 0, got {watts_per_busy_core}")
        self.watts_per_busy_core = float(watts_per_busy_core)
        self.note = note
        self._process = process
        self._start_cpu: Optional[float] = None

    def _cpu_seconds(self) -> float:
        """User + system CPU time of the process, all threads included."""
        if self._process is None:  # own process: CLOCK_PROCESS_CPUTIME_ID, ns resolution, not 10 ms ticks
            return time.process_time()
        times = self._process.cpu_times()
        return float(times.user + times.system)

    def start(self) -> None:
        """Record the process CPU time at the start of the window."""
        self._start_cpu = self._cpu_seconds()

    def stop(self) -> EnergyReading:
        """Return CPU time used in the window times the configured power per busy core."""
        if self._start_cpu is None:
            raise RuntimeError("CpuTimeEstimateSensor.stop() called before start()")
        cpu_time_s = max(0.0, self._cpu_seconds() - self._start_cpu)
        self._start_cpu = None
        return EnergyReading(
            joules=cpu_time_s * self.watts_per_busy_core, source="estimate", kind="estimate",
            method="cpu_time_x_power",
            params={"watts_per_busy_core": self.watts_per_busy_core, "cpu_time_s": cpu_time_s,
                    "note": self.note})
