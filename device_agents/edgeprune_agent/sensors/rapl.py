"""Linux powercap RAPL package-energy sensor with wrap-around tracking."""
from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass
from typing import List, Optional

from ..errors import SensorUnavailable
from .base import EnergyReading, EnergySensor

POWERCAP_DIR = "sys/class/powercap"
_TOP_ZONE = re.compile(r"^intel-rapl:(\d+)$")
_PACKAGE_NAME = re.compile(r"^package-\d+$")
PERMISSION_HINT = ("energy_uj is readable only by root since Linux 5.10: run the agent as root, or "
                   "`sudo chmod a+r /sys/class/powercap/intel-rapl:*/energy_uj` (resets at reboot)")


def _read_text(path: str) -> str:
    """Read a sysfs file and strip it."""
    with open(path, "r", encoding="ascii") as handle:
        return handle.read().strip()


def read_energy_uj(path: str) -> int:
    """Read a cumulative energy counter, turning permission errors into SensorUnavailable."""
    try:
        return int(_read_text(path))
    except PermissionError as exc:
        raise SensorUnavailable(f"cannot read {path}: permission denied. {PERMISSION_HINT}") from exc
    except (OSError, ValueError) as exc:
        raise SensorUnavailable(f"cannot read RAPL counter {path}: {exc}") from exc


@dataclass
class RaplZone:
    """One top-level RAPL package zone."""

    path: str
    name: str
    max_energy_range_uj: int

    @property
    def energy_file(self) -> str:
        """Path of the cumulative energy counter."""
        return os.path.join(self.path, "energy_uj")


class WrapCounter:
    """Accumulates deltas of a cumulative counter that wraps at max_range."""

    def __init__(self, max_range: int, first: int):
        self.max_range = max_range
        self.last = first
        self.total = 0
        self.wraps = 0

    def update(self, value: int) -> None:
        """Add the delta from the previous value, adding max_range + 1 when the counter wrapped."""
        delta = value - self.last
        if delta < 0:
            delta += self.max_range + 1
            self.wraps += 1
        self.total += delta
        self.last = value


def discover_zones(sysfs_root: str = "/") -> List[RaplZone]:
    """Top-level `package-N` zones under <sysfs_root>/sys/class/powercap (psys and subzones skipped)."""
    base = os.path.join(sysfs_root, POWERCAP_DIR)
    try:
        entries = os.listdir(base)
    except OSError:
        return []
    zones = []
    for entry in sorted(entries, key=lambda e: (len(e), e)):
        if not _TOP_ZONE.match(entry):
            continue
        path = os.path.join(base, entry)
        try:
            name = _read_text(os.path.join(path, "name"))
            max_range = int(_read_text(os.path.join(path, "max_energy_range_uj")))
        except (OSError, ValueError):
            continue
        if _PACKAGE_NAME.match(name):
            zones.append(RaplZone(path=path, name=name, max_energy_range_uj=max_range))
    return zones


class RaplSensor(EnergySensor):
    """Sums package energy over a window, polling in the background so repeated wraps are counted."""

    name = "rapl"
    kind = "measured"

    def __init__(self, sysfs_root: str = "/", poll_interval_s: float = 0.5):
        if not 0 < poll_interval_s <= 1.0:
            raise ValueError(f"poll_interval_s must be in (0, 1], got {poll_interval_s}")
        self.poll_interval_s = poll_interval_s
        self.zones = discover_zones(sysfs_root)
        if not self.zones:
            raise SensorUnavailable(
                f"no RAPL package zones under {os.path.join(sysfs_root, POWERCAP_DIR)} "
                "(not Linux on x86, powercap/intel_rapl driver not loaded, or running in a VM)")
        for zone in self.zones:
            read_energy_uj(zone.energy_file)
        self._lock = threading.Lock()
        self._counters: List[WrapCounter] = []
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def start(self) -> None:
        """Take the initial counter values and start the background poller."""
        if self._thread is not None:
            raise RuntimeError("RaplSensor window already started")
        with self._lock:
            self._counters = [WrapCounter(z.max_energy_range_uj, read_energy_uj(z.energy_file))
                              for z in self.zones]
        self._stop.clear()
        self._thread = threading.Thread(target=self._poll_loop, name="rapl-poller", daemon=True)
        self._thread.start()

    def poll(self) -> None:
        """Read every zone once and accumulate (read and update are atomic together)."""
        with self._lock:
            for zone, counter in zip(self.zones, self._counters):
                counter.update(read_energy_uj(zone.energy_file))

    def _poll_loop(self) -> None:
        """Poll until stopped; a failed read is retried at the next tick."""
        while not self._stop.wait(self.poll_interval_s):
            try:
                self.poll()
            except SensorUnavailable:
                continue

    def stop(self) -> EnergyReading:
        """Stop polling, take a final reading and return the window's energy."""
        if self._thread is None:
            raise RuntimeError("RaplSensor.stop() called before start()")
        self._stop.set()
        self._thread.join()
        self._thread = None
        self.poll()
        total_uj = sum(c.total for c in self._counters)
        return EnergyReading(
            joules=total_uj / 1e6, source="rapl", kind="measured",
            method="powercap energy_uj delta",
            params={"zones": [z.name for z in self.zones], "poll_interval_s": self.poll_interval_s,
                    "wraps": sum(c.wraps for c in self._counters),
                    "scope": "CPU package(s); excludes DRAM, board and PSU losses"})

    def close(self) -> None:
        """Stop the poller if a window is still open."""
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
