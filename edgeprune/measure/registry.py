"""Registered device agents (name → URL + token file), and opening a device by name."""
from __future__ import annotations

import json
import os
from pathlib import Path

from edgeprune.measure.devices import AgentDevice, LocalDevice
from edgeprune.paths import config_dir
from edgeprune.errors import EdgepruneError

LOCAL = "local"


class DeviceConfigError(EdgepruneError):
    """A device name, URL or token file is unusable."""


def _registry_path() -> Path:
    return config_dir() / "devices.json"


def load_registry() -> dict[str, dict]:
    """All registered devices."""
    path = _registry_path()
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DeviceConfigError(f"{path} is not valid JSON ({exc}); fix or delete it") from exc


def add_device(name: str, url: str, token_file: str | Path) -> dict:
    """Register (or replace) an agent; the token stays in its file, only the path is stored."""
    if name == LOCAL:
        raise DeviceConfigError("'local' is reserved for this machine")
    if not url.startswith(("http://", "https://")):
        raise DeviceConfigError(f"device URL must start with http:// or https://, got {url!r}")
    token_path = Path(token_file).expanduser().resolve()
    _read_token(token_path)
    devices = load_registry()
    devices[name] = {"url": url.rstrip("/"), "token_file": str(token_path)}
    _save(devices)
    return devices[name]


def _save(devices: dict[str, dict]) -> None:
    path = _registry_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(devices, indent=2, sort_keys=True))
    os.replace(tmp, path)


def _read_token(path: Path) -> str:
    try:
        token = path.read_text().strip()
    except OSError as exc:
        raise DeviceConfigError(f"cannot read token file {path}: {exc.strerror}") from exc
    if not token:
        raise DeviceConfigError(f"token file {path} is empty")
    return token


def open_device(name: str, sensor: str = "auto") -> LocalDevice | AgentDevice:
    """``local`` is this machine in-process; any other name must be registered with ``device add``."""
    if name == LOCAL:
        return LocalDevice(sensor=sensor)
    devices = load_registry()
    if name not in devices:
        known = ", ".join(sorted(devices)) or "none"
        raise DeviceConfigError(f"unknown device {name!r} (registered: {known}); "
                                f"add it with: edgeprune device add {name} --url URL --token-file PATH")
    entry = devices[name]
    return AgentDevice(name, entry["url"], _read_token(Path(entry["token_file"])))


def measurement_warnings(info: dict) -> list[str]:
    """Conditions in a device's info that spoil latency measurements."""
    warnings = []
    governors = {c.get("governor") for c in info.get("cpufreq") or [] if c.get("governor")}
    others = sorted(g for g in governors if g != "performance")
    if others:
        warnings.append(f"cpufreq governor is {', '.join(others)}, not 'performance': clocks change under load "
                        "and latency varies; set it with cpupower frequency-set -g performance")
    if not governors:
        warnings.append("cpufreq governor unknown (no cpufreq in sysfs, e.g. a VM): clock scaling can't be checked")
    conditions = info.get("conditions") or {}
    if conditions.get("throttled"):
        warnings.append("the device reports throttling (under-voltage or thermal cap): measurements will be slow")
    sensors = [s for s in info.get("available_sensors", []) if s != "estimate"]
    if not sensors:
        warnings.append("no power sensor: energy figures from this device are estimates, not measurements")
    return warnings


def remove_device(name: str) -> None:
    """Forget a registered device."""
    devices = load_registry()
    if name not in devices:
        raise DeviceConfigError(f"no device named {name!r} is registered")
    del devices[name]
    _save(devices)
