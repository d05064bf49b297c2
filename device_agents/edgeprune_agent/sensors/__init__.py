"""Energy sensor registry: real sensors first, a CPU-time estimate as the fallback."""
from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional

from ..commands import find_command
from ..errors import SensorUnavailable
from .base import EnergyReading, EnergySensor, PowerReading, PowerSource
from .estimate import DEFAULT_WATTS_PER_BUSY_CORE, CpuTimeEstimateSensor
from .rapl import RaplSensor
from .sampling import SampledSensor

# Tried in this order by 'auto'; 'nvml' and 'ina219' only when named (GPU-board scope / needs wiring facts).
AUTO_ORDER = ("rapl", "ina3221", "rpi_pmic", "tegrastats", "battery")
REAL_SENSORS = AUTO_ORDER + ("nvml", "ina219")
SENSORS = {name: name for name in REAL_SENSORS + ("estimate",)}
CHOICES = ("auto",) + REAL_SENSORS + ("estimate", "none")

__all__ = ["EnergyReading", "EnergySensor", "PowerReading", "PowerSource", "SampledSensor", "SENSORS",
           "CHOICES", "available_sensors", "open_sensor"]


def _builders(sysfs_root: str, poll_interval_s: float, bin_dir: Optional[str],
              options: Dict[str, Any]) -> Dict[str, Callable[[], EnergySensor]]:
    """Constructors of every real sensor (imports stay lazy)."""
    def ina3221() -> EnergySensor:
        from .ina3221 import Ina3221Source
        return SampledSensor(Ina3221Source(sysfs_root, **options.get("ina3221", {})))

    def rpi_pmic() -> EnergySensor:
        from .rpi import PmicSource
        return SampledSensor(PmicSource(bin_dir, **options.get("rpi_pmic", {})))

    def ina219() -> EnergySensor:
        from .rpi import Ina219Source
        return SampledSensor(Ina219Source(**options.get("ina219", {})))

    def tegrastats() -> EnergySensor:
        from .tegrastats import TegrastatsSource
        return SampledSensor(TegrastatsSource(bin_dir, **options.get("tegrastats", {})))

    def battery() -> EnergySensor:
        from .battery import BatterySource
        return SampledSensor(BatterySource(sysfs_root, **options.get("battery", {})))

    def nvml() -> EnergySensor:
        from .nvml import NvmlSensor
        return NvmlSensor(**options.get("nvml", {}))

    return {"rapl": lambda: RaplSensor(sysfs_root=sysfs_root, poll_interval_s=poll_interval_s),
            "ina3221": ina3221, "rpi_pmic": rpi_pmic, "ina219": ina219, "tegrastats": tegrastats,
            "battery": battery, "nvml": nvml}


def _open_real(name: str, sysfs_root: str, poll_interval_s: float, bin_dir: Optional[str] = None,
               options: Optional[Dict[str, Any]] = None) -> EnergySensor:
    """Construct real sensor `name`; raises SensorUnavailable when it cannot be used here."""
    builders = _builders(sysfs_root, poll_interval_s, bin_dir, options or {})
    if name not in builders:
        raise ValueError(f"unknown real sensor '{name}'")
    return builders[name]()


def available_sensors(sysfs_root: str = "/", bin_dir: Optional[str] = None) -> List[str]:
    """Names of the sensors usable right now ('tegrastats' = command present); 'estimate' is always last."""
    usable = []
    for name in AUTO_ORDER + ("nvml",):
        if name == "tegrastats":
            if find_command("tegrastats", bin_dir):
                usable.append(name)
            continue
        try:
            _open_real(name, sysfs_root, 0.5, bin_dir).close()
        except SensorUnavailable:
            continue
        usable.append(name)
    return usable + ["estimate"]


def open_sensor(name: str = "auto", sysfs_root: str = "/",
                watts_per_busy_core: float = DEFAULT_WATTS_PER_BUSY_CORE,
                poll_interval_s: float = 0.5, bin_dir: Optional[str] = None,
                options: Optional[Dict[str, Any]] = None) -> Optional[EnergySensor]:
    """Open sensor `name` ('auto' = first working real sensor, else estimate; 'none' = None)."""
    if name == "none":
        return None
    if name == "estimate":
        return CpuTimeEstimateSensor(watts_per_busy_core,
                                     note="estimate requested explicitly; not a measurement")
    if name in REAL_SENSORS:
        return _open_real(name, sysfs_root, poll_interval_s, bin_dir, options)
    if name != "auto":
        raise ValueError(f"unknown sensor '{name}'; choose one of {', '.join(CHOICES)}")
    reasons: Dict[str, str] = {}
    for real in AUTO_ORDER:
        try:
            return _open_real(real, sysfs_root, poll_interval_s, bin_dir, options)
        except SensorUnavailable as exc:
            reasons[real] = str(exc)
    note = "no power sensor on this host (" + "; ".join(f"{k}: {v}" for k, v in reasons.items()) + ")"
    return CpuTimeEstimateSensor(watts_per_busy_core, note=note)
