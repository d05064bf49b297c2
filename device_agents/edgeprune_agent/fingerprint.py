"""Device description, a stable hardware fingerprint, and current thermal/frequency conditions."""
from __future__ import annotations

import glob
import hashlib
import json
import os
import platform
import re
import socket
from typing import Dict, List, Optional

import psutil

from .runtimes import runtime_versions
from .sensors import available_sensors

CPU_DIR = "sys/devices/system/cpu"
_CPU_ENTRY = re.compile(r"^cpu(\d+)$")
PI_THROTTLED = "sys/devices/platform/soc/soc:firmware/get_throttled"


def _read(path: str) -> Optional[str]:
    """Stripped file content, or None when the file is absent or unreadable."""
    try:
        with open(path, "r", encoding="utf-8", errors="replace") as handle:
            return handle.read().strip()
    except OSError:
        return None


def _read_int(path: str) -> Optional[int]:
    """Integer file content, or None."""
    text = _read(path)
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def cpu_model(sysfs_root: str = "/") -> str:
    """CPU model from /proc/cpuinfo ('model name', else ARM 'Model'/'Hardware'), else platform."""
    fields: Dict[str, str] = {}
    for line in (_read(os.path.join(sysfs_root, "proc/cpuinfo")) or "").splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() not in fields and value.strip():
            fields[key.strip()] = value.strip()
    for key in ("model name", "Model", "Hardware"):
        if key in fields:
            return fields[key]
    return platform.processor() or platform.machine() or "unknown"


def _cpu_ids(sysfs_root: str) -> List[int]:
    """CPU indices present under sys/devices/system/cpu (falls back to the logical count)."""
    try:
        ids = sorted(int(m.group(1)) for e in os.listdir(os.path.join(sysfs_root, CPU_DIR))
                     if (m := _CPU_ENTRY.match(e)))
    except OSError:
        ids = []
    return ids or list(range(psutil.cpu_count(logical=True) or 1))


def cpufreq(sysfs_root: str = "/") -> List[Dict[str, object]]:
    """Per-CPU governor and current/max frequency in MHz (None where cpufreq is absent)."""
    out = []
    for cpu in _cpu_ids(sysfs_root):
        base = os.path.join(sysfs_root, CPU_DIR, f"cpu{cpu}", "cpufreq")
        cur = _read_int(os.path.join(base, "scaling_cur_freq"))
        top = _read_int(os.path.join(base, "cpuinfo_max_freq"))
        out.append({"cpu": cpu, "governor": _read(os.path.join(base, "scaling_governor")),
                    "cur_mhz": cur / 1000 if cur is not None else None,
                    "max_mhz": top / 1000 if top is not None else None})
    return out


def _stable_subset(sysfs_root: str) -> Dict[str, object]:
    """Hardware facts that survive reboots and software upgrades."""
    return {"cpu_model": cpu_model(sysfs_root), "arch": platform.machine(),
            "cores_logical": psutil.cpu_count(logical=True),
            "memory_gib": round(psutil.virtual_memory().total / 2**30)}


def fingerprint_id(sysfs_root: str = "/") -> str:
    """First 16 hex digits of sha256 over the stable hardware subset."""
    blob = json.dumps(_stable_subset(sysfs_root), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def _temperature_c(sysfs_root: str) -> Optional[float]:
    """Highest thermal-zone temperature in degrees C, or None without thermal zones."""
    temps = []
    for path in glob.glob(os.path.join(sysfs_root, "sys/class/thermal/thermal_zone*/temp")):
        milli = _read_int(path)
        if milli is not None and -40_000 <= milli <= 150_000:
            temps.append(milli / 1000)
    return max(temps) if temps else None


def _throttled(sysfs_root: str) -> Optional[bool]:
    """Raspberry Pi firmware 'currently throttled/capped/under-voltage' bits; None when unknown."""
    text = _read(os.path.join(sysfs_root, PI_THROTTLED))
    try:
        return bool(int(text, 16) & 0xF) if text else None
    except ValueError:
        return None


def conditions(sysfs_root: str = "/") -> Dict[str, object]:
    """Current governor, mean CPU frequency, max temperature and throttling state."""
    freqs = cpufreq(sysfs_root)
    governors = {f["governor"] for f in freqs if f["governor"] is not None}
    curs = [f["cur_mhz"] for f in freqs if f["cur_mhz"] is not None]
    return {
        "governor": (governors.pop() if len(governors) == 1 else "mixed") if governors else None,
        "cpu_freq_mhz": round(sum(curs) / len(curs), 1) if curs else None,
        "temperature_c": _temperature_c(sysfs_root),
        "throttled": _throttled(sysfs_root),
    }


def device_info(sysfs_root: str = "/") -> Dict[str, object]:
    """Everything the host needs to identify and describe this device."""
    stable = _stable_subset(sysfs_root)
    return {
        "hostname": socket.gethostname(),
        "cpu_model": stable["cpu_model"],
        "arch": stable["arch"],
        "cores_logical": stable["cores_logical"],
        "cores_physical": psutil.cpu_count(logical=False),
        "memory_total_bytes": psutil.virtual_memory().total,
        "os": {"system": platform.system(), "platform": platform.platform(),
               "kernel": platform.release()},
        "python": platform.python_version(),
        "runtime_versions": runtime_versions(),
        "cpufreq": cpufreq(sysfs_root),
        "available_sensors": available_sensors(sysfs_root),
        "conditions": conditions(sysfs_root),
        "fingerprint_id": fingerprint_id(sysfs_root),
    }
