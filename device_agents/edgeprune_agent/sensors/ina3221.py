"""Jetson INA3221 rail power from sysfs: JetPack 4 IIO driver (ina3221x) and JetPack 5/6 hwmon driver (ina3221)."""
from __future__ import annotations

import glob
import os
import re
from dataclasses import dataclass
from typing import Dict, List, Optional

from ..errors import SensorUnavailable
from .base import PowerReading, PowerSource

IIO_GLOB = "sys/bus/i2c/drivers/ina3221x/*/iio:device*"
HWMON_GLOBS = ("sys/bus/i2c/drivers/ina3221/*/hwmon/hwmon*", "sys/class/hwmon/hwmon*")
INPUT_RAILS = ("VDD_IN", "POM_5V_IN")
SKIP_LABELS = ("NC", "sum of shunt voltages")
_RAIL_NAME = re.compile(r"^rail_name_(\d+)$")
_IN_LABEL = re.compile(r"^in(\d+)_label$")


@dataclass(frozen=True)
class Rail:
    """One monitored rail: how to read its power in milliwatts."""

    name: str
    driver: str
    power_file: Optional[str] = None  # IIO: in_powerN_input (mW)
    voltage_file: Optional[str] = None  # mV
    current_file: Optional[str] = None  # mA

    def milliwatts(self) -> float:
        """Rail power in mW (the IIO power file, else bus voltage x current)."""
        if self.power_file is not None:
            return float(_read_number(self.power_file))
        return _read_number(self.voltage_file) * _read_number(self.current_file) / 1000.0


def _read(path: str) -> str:
    """Stripped file content."""
    with open(path, "r", encoding="utf-8") as handle:
        return handle.read().strip()


def _read_number(path: Optional[str]) -> float:
    """Leading number of a sysfs value ('32760 ma' -> 32760); SensorUnavailable when unreadable."""
    if path is None:
        raise SensorUnavailable("INA3221 rail has no readable value file")
    try:
        return float(_read(path).split()[0])
    except (OSError, ValueError, IndexError) as exc:
        raise SensorUnavailable(f"cannot read {path}: {exc}") from exc


def _iio_rails(device_dir: str) -> List[Rail]:
    """Rails of one JetPack 4 `ina3221x` IIO device (rail_name_N, in_powerN_input in mW)."""
    rails = []
    for entry in sorted(os.listdir(device_dir)):
        match = _RAIL_NAME.match(entry)
        if not match:
            continue
        n = match.group(1)
        name = _read(os.path.join(device_dir, entry))
        if name in SKIP_LABELS:
            continue
        power = os.path.join(device_dir, f"in_power{n}_input")
        rails.append(Rail(name, "ina3221x (IIO, JetPack 4)",
                          power_file=power if os.path.exists(power) else None,
                          voltage_file=os.path.join(device_dir, f"in_voltage{n}_input"),
                          current_file=os.path.join(device_dir, f"in_current{n}_input")))
    return rails


def _hwmon_rails(hwmon_dir: str) -> List[Rail]:
    """Rails of one JetPack 5/6 `ina3221` hwmon device (inN_label, inN_input mV, currN_input mA; no power file)."""
    rails = []
    for entry in sorted(os.listdir(hwmon_dir)):
        match = _IN_LABEL.match(entry)
        if not match:
            continue
        n = match.group(1)
        label = _read(os.path.join(hwmon_dir, entry))
        current = os.path.join(hwmon_dir, f"curr{n}_input")
        if label in SKIP_LABELS or not os.path.exists(current):
            continue
        rails.append(Rail(label, "ina3221 (hwmon, JetPack 5/6)",
                          voltage_file=os.path.join(hwmon_dir, f"in{n}_input"), current_file=current))
    return rails


def _is_named(path: str, name: str) -> bool:
    """True when <path>/name reads `name`."""
    try:
        return _read(os.path.join(path, "name")) == name
    except OSError:
        return False


def discover_rails(sysfs_root: str = "/") -> List[Rail]:
    """All INA3221 rails under the root, IIO devices first, each chip once."""
    rails: List[Rail] = []
    seen = set()
    for path in sorted(glob.glob(os.path.join(sysfs_root, IIO_GLOB))):
        if _is_named(path, "ina3221x") and os.path.realpath(path) not in seen:
            seen.add(os.path.realpath(path))
            rails.extend(_iio_rails(path))
    for pattern in HWMON_GLOBS:
        for path in sorted(glob.glob(os.path.join(sysfs_root, pattern))):
            if _is_named(path, "ina3221") and os.path.realpath(path) not in seen:
                seen.add(os.path.realpath(path))
                rails.extend(_hwmon_rails(path))
    return rails


class Ina3221Source(PowerSource):
    """Board power from the input rail (VDD_IN / POM_5V_IN) when present, else the sum of the rails."""

    name = "ina3221"

    def __init__(self, sysfs_root: str = "/", refresh_s: float = 0.1):
        self.rails = discover_rails(sysfs_root)
        if not self.rails:
            raise SensorUnavailable(f"no INA3221 rails under {sysfs_root} (not a Jetson, or the "
                                    "ina3221/ina3221x driver is not loaded)")
        self.refresh_s = refresh_s
        names = [r.name for r in self.rails]
        self.total_rail = next((n for n in INPUT_RAILS if n in names), None)

    def read(self) -> PowerReading:
        """Read every rail once; the total is the input rail or the rail sum."""
        rails_w: Dict[str, float] = {}
        for rail in self.rails:
            rails_w[rail.name] = rail.milliwatts() / 1000.0
        total = rails_w[self.total_rail] if self.total_rail else sum(rails_w.values())
        return PowerReading(watts=total, rails_w=rails_w)

    def describe(self) -> Dict[str, object]:
        """Which rail the total comes from, and the driver."""
        if self.total_rail:
            board = f"input rail {self.total_rail} (whole module/board input)"
        else:
            board = "sum of rails (no VDD_IN/POM_5V_IN rail: misses unmonitored rails)"
        return {"board_power_from": board, "driver": self.rails[0].driver,
                "rails": [r.name for r in self.rails]}
