"""Battery power from power_supply sysfs (Android or Linux): per-device unit (uA vs mA) and sign normalisation."""
from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass
from typing import Any, Dict, List, Optional, Sequence

from ..errors import SensorUnavailable
from .base import PowerReading, PowerSource

BATTERY_DIR = "sys/class/power_supply/battery"
MA_THRESHOLD = 10_000  # |current| below this while the device works means mA (a phone draws > 10 mA)
DISCHARGING = ("Discharging", "Not charging")


@dataclass(frozen=True)
class BatterySample:
    """One raw reading of the battery's files."""

    t: float
    current_raw: int
    voltage_raw: int
    status: str
    charge_counter_uah: Optional[int] = None


@dataclass(frozen=True)
class Convention:
    """How this device reports current: scale to uA and which sign means discharging."""

    current_scale_to_ua: float
    discharge_sign: int  # -1: ABI (negative = discharging); +1: vendor quirk (positive = discharging)
    unit_method: str
    sign_method: str

    def draw_w(self, sample: BatterySample) -> float:
        """Power drawn from the battery in watts (positive while discharging)."""
        current_ua = sample.current_raw * self.current_scale_to_ua * self.discharge_sign
        volts = sample.voltage_raw / (1e3 if sample.voltage_raw < 100_000 else 1e6)  # mV or uV
        return current_ua * 1e-6 * volts


def parse_grep_output(text: str) -> Dict[str, str]:
    """`grep -H . /sys/class/power_supply/battery/*` output -> {file name: value} (uevent lines skipped)."""
    values: Dict[str, str] = {}
    for line in text.splitlines():
        path, sep, value = line.partition(":") if not line.startswith("#") else ("", "", "")
        name = path.rsplit("/", 1)[-1]
        if sep and "/power_supply/battery/" in path and name != "uevent":
            values[name] = value.strip()
    return values


def sample_from_values(values: Dict[str, str], t: float) -> BatterySample:
    """A BatterySample from a {file name: value} mapping."""
    try:
        counter = values.get("charge_counter")
        return BatterySample(t=t, current_raw=int(values["current_now"]), voltage_raw=int(values["voltage_now"]),
                             status=values.get("status", "Unknown"),
                             charge_counter_uah=int(counter) if counter not in (None, "") else None)
    except (KeyError, ValueError) as exc:
        raise SensorUnavailable(f"battery current_now/voltage_now unreadable: {exc}") from exc


def _charge_rate_ua(samples: Sequence[BatterySample]) -> Optional[float]:
    """Mean discharge current implied by charge_counter (uA, positive = draining); None without a change."""
    first, last = samples[0], samples[-1]
    if first.charge_counter_uah is None or last.charge_counter_uah is None or last.t <= first.t:
        return None
    delta = last.charge_counter_uah - first.charge_counter_uah
    return None if delta == 0 else -delta * 3600.0 / (last.t - first.t)


def infer_convention(samples: Sequence[BatterySample]) -> Convention:
    """Decide unit and sign from status, magnitude and (when it moved) charge_counter."""
    if not samples:
        raise SensorUnavailable("no battery samples")
    if not any(s.status in DISCHARGING for s in samples):
        raise SensorUnavailable(f"battery status is {samples[-1].status!r}: while charging the battery current "
                                "is not the device's consumption; unplug (use adb over Wi-Fi)")
    mean_raw = sum(s.current_raw for s in samples) / len(samples)
    rate = _charge_rate_ua(samples)
    if rate is not None and mean_raw != 0:
        ratio = abs(rate) / abs(mean_raw)
        scale = 1.0 if abs(math.log10(ratio)) < abs(math.log10(ratio / 1000.0)) else 1000.0
        unit_method = "charge_counter cross-check"
    else:
        scale = 1000.0 if abs(mean_raw) < MA_THRESHOLD else 1.0
        unit_method = f"magnitude (|current| {'<' if scale > 1 else '>='} {MA_THRESHOLD} means mA)"
    if rate is not None and mean_raw != 0:
        sign = 1 if (mean_raw > 0) == (rate > 0) else -1
        sign_method = "charge_counter direction"
    else:
        sign = 1 if mean_raw > 0 else -1
        sign_method = "status Discharging with the reported sign"
    return Convention(scale, sign, unit_method, sign_method)


def cross_check(convention: Convention, samples: Sequence[BatterySample]) -> Dict[str, Any]:
    """Compare the normalised mean current with the charge_counter slope over the same window."""
    rate = _charge_rate_ua(samples)
    mean_ua = sum(s.current_raw for s in samples) / len(samples) * convention.current_scale_to_ua \
        * convention.discharge_sign
    if rate is None:
        return {"status": "charge_counter did not change (window too short to cross-check)",
                "mean_current_ua": mean_ua}
    return {"status": "checked", "mean_current_ua": mean_ua, "charge_counter_current_ua": rate,
            "ratio": mean_ua / rate if rate else None}


def read_battery(sysfs_root: str = "/", t: Optional[float] = None) -> BatterySample:
    """Read current_now, voltage_now, status and charge_counter under <root>/sys/class/power_supply/battery."""
    values = {}
    for name in ("current_now", "voltage_now", "status", "charge_counter"):
        try:
            with open(os.path.join(sysfs_root, BATTERY_DIR, name), "r", encoding="utf-8") as handle:
                values[name] = handle.read().strip()
        except OSError:
            continue
    return sample_from_values(values, time.monotonic() if t is None else t)


class BatterySource(PowerSource):
    """Battery draw on the device itself (an agent on Android/Termux or a Linux laptop on battery)."""

    name = "battery"

    def __init__(self, sysfs_root: str = "/", refresh_s: float = 1.0):
        self.sysfs_root = sysfs_root
        self.refresh_s = refresh_s  # fuel gauges update current_now about once a second
        first = read_battery(sysfs_root)
        self.convention = infer_convention([first])
        self._window: List[BatterySample] = []

    def read(self) -> PowerReading:
        """Normalised battery draw; the raw sample is kept for the charge_counter cross-check."""
        sample = read_battery(self.sysfs_root)
        self._window.append(sample)
        return PowerReading(watts=self.convention.draw_w(sample),
                            extra={"status": sample.status, "current_raw": sample.current_raw})

    def begin_window(self) -> None:
        """Forget samples of the previous window."""
        self._window = []

    def end_window(self) -> Dict[str, Any]:
        """Convention used and the charge_counter cross-check of this window."""
        info: Dict[str, Any] = {"convention": asdict(self.convention)}
        if self._window:
            info["charge_counter_check"] = cross_check(self.convention, self._window)
            info["charging_during_window"] = any(s.status not in DISCHARGING for s in self._window)
        return info

    def describe(self) -> Dict[str, Any]:
        """Scope of the figure."""
        return {"board_power_from": "battery (current_now x voltage_now)",
                "scope": "whole device incl. screen and radios"}


def parse_dumpsys_battery(text: str) -> Dict[str, Any]:
    """`dumpsys battery` -> fields, plus whether the framework was told 'unplug' while the cable still charges."""
    fields: Dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition(": ")
        if sep:
            fields[key] = value.strip()
    powered = [fields.get(f"{k} powered") == "true" for k in ("AC", "USB", "Wireless", "Dock")]
    status = int(fields["status"]) if fields.get("status", "").isdigit() else None
    return {"fields": fields, "updates_stopped": "UPDATES STOPPED" in text, "any_powered": any(powered),
            "status": {2: "Charging", 3: "Discharging", 4: "Not charging", 5: "Full"}.get(status, status),
            "charging_despite_unplug": status == 2 and not any(powered)}
