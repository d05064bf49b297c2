"""Device description and a stable hardware fingerprint."""
from __future__ import annotations

import hashlib
import json
import os
import platform
import socket
from typing import Dict, Optional

import psutil

from .conditions import conditions, cpufreq
from .runtimes import runtime_versions
from .sensors import available_sensors
from .sysfs import read_text

__all__ = ["cpu_model", "cpufreq", "conditions", "fingerprint_id", "device_info"]


def cpu_model(sysfs_root: str = "/") -> str:
    """CPU model from /proc/cpuinfo ('model name', else ARM 'Model'/'Hardware'), else platform."""
    fields: Dict[str, str] = {}
    for line in (read_text(os.path.join(sysfs_root, "proc/cpuinfo")) or "").splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() not in fields and value.strip():
            fields[key.strip()] = value.strip()
    for key in ("model name", "Model", "Hardware"):
        if key in fields:
            return fields[key]
    return platform.processor() or platform.machine() or "unknown"


def _stable_subset(sysfs_root: str) -> Dict[str, object]:
    """Hardware facts that survive reboots and software upgrades."""
    return {"cpu_model": cpu_model(sysfs_root), "arch": platform.machine(),
            "cores_logical": psutil.cpu_count(logical=True),
            "memory_gib": round(psutil.virtual_memory().total / 2**30)}


def fingerprint_id(sysfs_root: str = "/") -> str:
    """First 16 hex digits of sha256 over the stable hardware subset."""
    blob = json.dumps(_stable_subset(sysfs_root), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def device_info(sysfs_root: str = "/", bin_dir: Optional[str] = None) -> Dict[str, object]:
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
        "available_sensors": available_sensors(sysfs_root, bin_dir),
        "conditions": conditions(sysfs_root, bin_dir),
        "fingerprint_id": fingerprint_id(sysfs_root),
    }
