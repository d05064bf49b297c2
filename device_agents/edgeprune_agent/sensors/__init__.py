"""Energy sensor registry: real sensors first, a CPU-time estimate as the fallback."""
from __future__ import annotations

from typing import Dict, List, Optional

from ..errors import SensorUnavailable
from .base import EnergyReading, EnergySensor
from .estimate import DEFAULT_WATTS_PER_BUSY_CORE, CpuTimeEstimateSensor
from .rapl import RaplSensor

SENSORS = {"rapl": RaplSensor, "estimate": CpuTimeEstimateSensor}
REAL_SENSORS = ("rapl",)
CHOICES = ("auto",) + tuple(SENSORS) + ("none",)

__all__ = ["EnergyReading", "EnergySensor", "SENSORS", "CHOICES", "available_sensors", "open_sensor"]


def _open_real(name: str, sysfs_root: str, poll_interval_s: float) -> EnergySensor:
    """Construct real sensor `name`; raises SensorUnavailable when it cannot be used here."""
    if name == "rapl":
        return RaplSensor(sysfs_root=sysfs_root, poll_interval_s=poll_interval_s)
    raise ValueError(f"unknown real sensor '{name}'")


def available_sensors(sysfs_root: str = "/") -> List[str]:
    """Names of the sensors usable right now; 'estimate' is always last."""
    usable = []
    for name in REAL_SENSORS:
        try:
            _open_real(name, sysfs_root, 0.5).close()
        except SensorUnavailable:
            continue
        usable.append(name)
    return usable + ["estimate"]


def open_sensor(name: str = "auto", sysfs_root: str = "/",
                watts_per_busy_core: float = DEFAULT_WATTS_PER_BUSY_CORE,
                poll_interval_s: float = 0.5) -> Optional[EnergySensor]:
    """Open sensor `name` ('auto' = first working real sensor, else estimate; 'none' = None)."""
    if name == "none":
        return None
    if name == "estimate":
        return CpuTimeEstimateSensor(watts_per_busy_core,
                                     note="estimate requested explicitly; not a measurement")
    if name in REAL_SENSORS:
        return _open_real(name, sysfs_root, poll_interval_s)
    if name != "auto":
        raise ValueError(f"unknown sensor '{name}'; choose one of {', '.join(CHOICES)}")
    reasons: Dict[str, str] = {}
    for real in REAL_SENSORS:
        try:
            return _open_real(real, sysfs_root, poll_interval_s)
        except SensorUnavailable as exc:
            reasons[real] = str(exc)
    note = "no power sensor on this host (" + "; ".join(f"{k}: {v}" for k, v in reasons.items()) + ")"
    return CpuTimeEstimateSensor(watts_per_busy_core, note=note)
