"""What the device is doing right now: governors, clocks, temperatures and throttle flags."""
from __future__ import annotations

import glob
import os
import re
from typing import Any, Dict, List, Optional

import psutil

from .commands import find_command, run_command
from .errors import SensorUnavailable
from .sensors.rpi import decode_throttled, parse_get_throttled
from .sysfs import read_int, read_text
from .virt import virtualization

CPU_DIR = "sys/devices/system/cpu"
_CPU_ENTRY = re.compile(r"^cpu(\d+)$")
PI_THROTTLED = "sys/devices/platform/soc/soc:firmware/get_throttled"


def _cpu_ids(sysfs_root: str) -> List[int]:
    """CPU indices present under sys/devices/system/cpu (falls back to the logical count)."""
    try:
        ids = sorted(int(m.group(1)) for e in os.listdir(os.path.join(sysfs_root, CPU_DIR))
                     if (m := _CPU_ENTRY.match(e)))
    except OSError:
        ids = []
    return ids or list(range(psutil.cpu_count(logical=True) or 1))


def _mhz(khz: Optional[int], per_mhz: float = 1000.0) -> Optional[float]:
    """kHz (or Hz with per_mhz=1e6) to MHz, None stays None."""
    return khz / per_mhz if khz is not None else None


def cpufreq(sysfs_root: str = "/") -> List[Dict[str, object]]:
    """Per-CPU governor and current/max frequency in MHz (None where cpufreq is absent)."""
    out = []
    for cpu in _cpu_ids(sysfs_root):
        base = os.path.join(sysfs_root, CPU_DIR, f"cpu{cpu}", "cpufreq")
        out.append({"cpu": cpu, "governor": read_text(os.path.join(base, "scaling_governor")),
                    "cur_mhz": _mhz(read_int(os.path.join(base, "scaling_cur_freq"))),
                    "max_mhz": _mhz(read_int(os.path.join(base, "cpuinfo_max_freq")))})
    return out


def temperatures(sysfs_root: str = "/") -> Dict[str, float]:
    """Thermal-zone temperatures in degrees C keyed by zone type (plausible range only)."""
    temps: Dict[str, float] = {}
    for zone in sorted(glob.glob(os.path.join(sysfs_root, "sys/class/thermal/thermal_zone*"))):
        milli = read_int(os.path.join(zone, "temp"))
        if milli is None or not -40_000 <= milli <= 150_000:
            continue
        name = read_text(os.path.join(zone, "type")) or os.path.basename(zone)
        temps[name if name not in temps else f"{name}:{os.path.basename(zone)}"] = milli / 1000
    return temps


def devfreq(sysfs_root: str = "/") -> Dict[str, Dict[str, Any]]:
    """GPU/memory-controller clocks from devfreq (Jetson GPU, Mali, ...), MHz."""
    out = {}
    for dev in sorted(glob.glob(os.path.join(sysfs_root, "sys/class/devfreq/*"))):
        cur = read_int(os.path.join(dev, "cur_freq"))
        if cur is not None:
            out[os.path.basename(dev)] = {"cur_mhz": _mhz(cur, 1e6),
                                          "max_mhz": _mhz(read_int(os.path.join(dev, "max_freq")), 1e6),
                                          "governor": read_text(os.path.join(dev, "governor"))}
    return out


def throttle_flags(sysfs_root: str = "/", bin_dir: Optional[str] = None) -> Optional[Dict[str, Any]]:
    """Raspberry Pi firmware throttle bits from sysfs, else `vcgencmd get_throttled`; None when neither exists."""
    text, source = read_text(os.path.join(sysfs_root, PI_THROTTLED)), "sysfs get_throttled"
    if text is None and find_command("vcgencmd", bin_dir):
        try:
            text, source = run_command(["vcgencmd", "get_throttled"], bin_dir), "vcgencmd get_throttled"
        except SensorUnavailable:
            return None
    try:
        flags = decode_throttled(parse_get_throttled(text)) if text else None
    except ValueError:
        return None
    if flags is not None:
        flags["source"] = source
    return flags


def thermal_throttle_count(sysfs_root: str = "/") -> Optional[int]:
    """x86 core + package thermal-throttle events since boot, summed over CPUs; None when not exposed."""
    counts = [read_int(p) for p in glob.glob(os.path.join(
        sysfs_root, CPU_DIR, "cpu*", "thermal_throttle", "*_throttle_count"))]
    counts = [c for c in counts if c is not None]
    return sum(counts) if counts else None


def conditions(sysfs_root: str = "/", bin_dir: Optional[str] = None) -> Dict[str, object]:
    """Governor, mean and per-CPU clocks, temperatures, devfreq clocks, throttle flags and emulation/VM/container."""
    freqs = cpufreq(sysfs_root)
    governors = {f["governor"] for f in freqs if f["governor"] is not None}
    curs = [f["cur_mhz"] for f in freqs if f["cur_mhz"] is not None]
    temps = temperatures(sysfs_root)
    flags = throttle_flags(sysfs_root, bin_dir)
    return {
        "governor": (governors.pop() if len(governors) == 1 else "mixed") if governors else None,
        "cpu_freq_mhz": round(sum(curs) / len(curs), 1) if curs else None,
        "temperature_c": max(temps.values()) if temps else None,
        "throttled": None if flags is None else any(flags[k] for k in
                                                    ("under_voltage", "arm_freq_capped", "throttled",
                                                     "soft_temp_limit")),
        "cpufreq": freqs,
        "temperatures_c": temps,
        "devfreq": devfreq(sysfs_root),
        "throttle_flags": flags,
        "thermal_throttle_count": thermal_throttle_count(sysfs_root),
        "virtualization": virtualization(sysfs_root),
    }
