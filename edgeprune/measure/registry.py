"""Registered device agents (name → URL + token file), and opening a device by name."""
from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlsplit

from edgeprune.files import atomic_write
from edgeprune.measure.devices import AgentDevice, LocalDevice
from edgeprune.measure.tls import TlsTrustError, ca_context, normalise_fingerprint
from edgeprune.paths import config_dir, legacy_config_dir
from edgeprune.errors import EdgepruneError

LOCAL = "local"


class DeviceConfigError(EdgepruneError):
    """A device name, URL or token file is unusable."""


def _registry_path() -> Path:
    return config_dir() / "devices.json"


def _moved_registry_hint(name: str) -> str | None:
    """Where to move the registry when ``name`` sits in the one older versions kept in ~/.config/edgeprune."""
    old = legacy_config_dir() / "devices.json"
    try:
        if old.resolve() == _registry_path().resolve() or name not in _load_json(old):
            return None
    except DeviceConfigError:  # an unreadable old registry: nothing to point at
        return None
    return (f"{name!r} is registered in {old}, where older versions kept devices; move devices.json and "
            f"groups.json to {config_dir()} (or set EDGEPRUNE_CONFIG_DIR={old.parent})")


def _load_json(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DeviceConfigError(f"{path} is not valid JSON ({exc}); fix or delete it") from exc


def load_registry() -> dict[str, dict]:
    """All registered devices."""
    return _load_json(_registry_path())


def add_device(name: str, url: str, token_file: str | Path, ca_cert: str | Path | None = None,
               tls_fingerprint: str | None = None) -> dict:
    """Register (or replace) an agent; the token stays in its file, only the path is stored.

    ``ca_cert`` (a CA or the agent's own certificate) or ``tls_fingerprint`` (pinned SHA-256) set the TLS trust.
    """
    if name == LOCAL:
        raise DeviceConfigError("'local' is reserved for this machine")
    if not url.startswith(("http://", "https://")):
        raise DeviceConfigError(f"device URL must start with http:// or https://, got {url!r}")
    if (ca_cert or tls_fingerprint) and not url.startswith("https://"):
        raise DeviceConfigError(f"--ca-cert/--tls-fingerprint need an https:// URL, got {url!r}")
    if ca_cert and tls_fingerprint:
        raise DeviceConfigError("give either --ca-cert or --tls-fingerprint, not both")
    token_path = Path(token_file).expanduser().resolve()
    _read_token(token_path)
    entry = {"url": url.rstrip("/"), "token_file": str(token_path)}
    try:
        if ca_cert:
            ca_path = Path(ca_cert).expanduser().resolve()
            ca_context(ca_path)
            entry["ca_cert"] = str(ca_path)
        if tls_fingerprint:
            entry["tls_fingerprint"] = normalise_fingerprint(tls_fingerprint)
    except TlsTrustError as exc:
        raise DeviceConfigError(str(exc)) from exc
    devices = load_registry()
    devices[name] = entry
    _save(devices)
    return devices[name]


def _save(devices: dict[str, dict]) -> None:
    atomic_write(_registry_path(), json.dumps(devices, indent=2, sort_keys=True))


def _read_token(path: Path) -> str:
    try:
        token = path.read_text().strip()
    except OSError as exc:
        raise DeviceConfigError(f"cannot read token file {path}: {exc.strerror}") from exc
    if not token:
        raise DeviceConfigError(f"token file {path} is empty")
    return token


def add_android_device(name: str, serial: str, benchmark_binary: str | Path, cores: str = "f0",
                       use_xnnpack: bool = False) -> dict:
    """Register a phone reached over adb, measured with the user's TFLite benchmark_model binary."""
    if name == LOCAL:
        raise DeviceConfigError("'local' is reserved for this machine")
    binary = Path(benchmark_binary).expanduser().resolve()
    if not binary.is_file():
        raise DeviceConfigError(f"benchmark binary {binary} does not exist (build or download TFLite's "
                                "benchmark_model for the phone's ABI)")
    int(cores, 16)  # a taskset mask such as f0; ValueError otherwise
    devices = load_registry()
    devices[name] = {"kind": "android", "serial": serial, "benchmark_binary": str(binary), "cores": cores,
                     "use_xnnpack": use_xnnpack}
    _save(devices)
    return devices[name]


def add_farm_device(name: str, broker: str, hardware_class: str | None = None,
                    password_file: str | Path | None = None) -> dict:
    """Register a device farm: a broker URL and one hardware class (discovered from heartbeats when omitted)."""
    from edgeprune.measure.farm import discover_classes
    from edgeprune_agent.farm import FarmError, broker_url, check_class

    if name == LOCAL:
        raise DeviceConfigError("'local' is reserved for this machine")
    password_path = str(Path(password_file).expanduser().resolve()) if password_file else None
    try:
        broker_url(broker, password_path)
        if urlsplit(broker).password:
            raise DeviceConfigError("keep the broker password out of the URL (it would be stored in devices.json): "
                                    "put it in a file and pass --password-file PATH")
        if hardware_class is None:
            classes = discover_classes(broker, password_path)
            if len(classes) != 1:
                found = "; ".join(f"{c} ({', '.join(w)})" for c, w in sorted(classes.items())) or "no live workers"
                raise DeviceConfigError(f"pass --hardware-class: the broker has {found}")
            hardware_class = next(iter(classes))
        check_class(hardware_class)
    except FarmError as exc:
        raise DeviceConfigError(str(exc)) from exc
    devices = load_registry()
    devices[name] = {"kind": "farm", "broker": broker, "hardware_class": hardware_class,
                     "password_file": password_path}
    _save(devices)
    return devices[name]


def open_device(name: str, sensor: str = "auto"):
    """``local`` is this machine in-process; any other name must be registered with ``device add``."""
    if name == LOCAL:
        return LocalDevice(sensor=sensor)
    devices = load_registry()
    if name not in devices:
        known = ", ".join(sorted(devices)) or "none"
        raise DeviceConfigError(f"unknown device {name!r} (registered: {known}); "
                                f"add it with: edgeprune device add {name} --url URL --token-file PATH",
                                hint=_moved_registry_hint(name))
    entry = devices[name]
    if entry.get("kind") == "android":
        from edgeprune.measure.android import AndroidDevice

        return AndroidDevice(name, entry["serial"], entry["benchmark_binary"], cores=entry.get("cores", "f0"),
                             use_xnnpack=entry.get("use_xnnpack", False))
    if entry.get("kind") == "farm":
        from edgeprune.measure.farm import FarmDevice

        return FarmDevice(name, entry["broker"], entry["hardware_class"], entry.get("password_file"))
    return AgentDevice(name, entry["url"], _read_token(Path(entry["token_file"])), ca_cert=entry.get("ca_cert"),
                       tls_fingerprint=entry.get("tls_fingerprint"))


def _groups_path() -> Path:
    return config_dir() / "groups.json"


def load_groups() -> dict[str, list[str]]:
    """Named device groups (fleets)."""
    return _load_json(_groups_path())


def add_group(name: str, members: list[str]) -> list[str]:
    """Name a fleet; members must be registered (their hardware class is checked when calibrating)."""
    devices = load_registry()
    unknown = [m for m in members if m not in devices and m != LOCAL]
    if not members or unknown:
        raise DeviceConfigError(f"a group needs registered members; unknown: {', '.join(unknown) or 'none given'}")
    if name in devices or name == LOCAL:
        raise DeviceConfigError(f"{name!r} is already a device name")
    groups = load_groups()
    groups[name] = list(dict.fromkeys(members))
    atomic_write(_groups_path(), json.dumps(groups, indent=2, sort_keys=True))
    return groups[name]


def remove_group(name: str) -> None:
    """Forget a group (its devices stay registered)."""
    groups = load_groups()
    if name not in groups:
        raise DeviceConfigError(f"no group named {name!r}")
    del groups[name]
    atomic_write(_groups_path(), json.dumps(groups, indent=2, sort_keys=True))


def expand_devices(names: list[str]) -> list[str]:
    """Replace group names by their members, keeping order and dropping repeats."""
    groups = load_groups()
    out: list[str] = []
    for name in names:
        out.extend(groups.get(name, [name]))
    return list(dict.fromkeys(out))


def measurement_warnings(info: dict) -> list[str]:
    """Conditions in a device's info that spoil latency or energy measurements."""
    return (_virtualization_warnings(info.get("conditions") or {}) + _clock_warnings(info)
            + _thermal_warnings(info.get("conditions") or {}) + _energy_warnings(info))


def _virtualization_warnings(conditions: dict) -> list[str]:
    """An emulated CPU, a VM or a container the agent found itself in (its `virtualization` record)."""
    v = conditions.get("virtualization") or {}
    warnings = []
    if v.get("emulator"):
        warnings.append(f"the agent runs under CPU emulation ({v['emulator']}): its timings and energy are NOT "
                        "meaningful for the real hardware; use it to check installs and outputs only")
    if v.get("hypervisor"):
        warnings.append(f"the agent runs in a virtual machine ({v['hypervisor']}): timings include hypervisor "
                        "overhead and other guests' load, not those of a physical device")
    if v.get("container"):
        warnings.append(f"the agent runs in a container ({v['container']}): check that no CPU quota or shared "
                        "cores slow it down")
    return warnings


def _clock_warnings(info: dict) -> list[str]:
    """Governors that scale clocks, clocks held below their maximum, scaling GPU/memory clocks."""
    warnings = []
    cpus = info.get("cpufreq") or []
    governors = {c.get("governor") for c in cpus if c.get("governor")}
    others = sorted(g for g in governors if g != "performance")
    if others:
        warnings.append(f"cpufreq governor is {', '.join(others)}, not 'performance': clocks change under load "
                        "and latency varies; set it with cpupower frequency-set -g performance")
    if not governors:
        warnings.append("cpufreq governor unknown (no cpufreq in sysfs, e.g. a VM): clock scaling can't be checked")
    capped = [c["cpu"] for c in cpus if c.get("governor") == "performance" and c.get("cur_mhz") and c.get("max_mhz")
              and c["cur_mhz"] < 0.9 * c["max_mhz"]]
    if capped:
        warnings.append(f"CPUs {capped} run below 90% of their max clock under the performance governor: "
                        "a thermal or power cap is active")
    devfreq = (info.get("conditions") or {}).get("devfreq") or {}
    scaling = sorted(n for n, d in devfreq.items() if d.get("governor") not in (None, "performance", "userspace"))
    if scaling:
        warnings.append(f"devfreq clocks of {', '.join(scaling)} scale on demand (GPU/memory): pin them for stable "
                        "numbers (on Jetson: sudo jetson_clocks)")
    return warnings


def _thermal_warnings(conditions: dict) -> list[str]:
    """Throttling now or since boot, and hot temperatures."""
    warnings = []
    flags = conditions.get("throttle_flags") or {}
    if conditions.get("throttled"):
        now = [k for k in ("under_voltage", "arm_freq_capped", "throttled", "soft_temp_limit") if flags.get(k)]
        warnings.append("the device reports throttling (under-voltage or thermal cap) "
                        f"{'(' + ', '.join(now) + ') ' if now else ''}: measurements will be slow")
    past = [k for k in flags if k.endswith("_occurred") and flags[k]]
    if past and not conditions.get("throttled"):
        warnings.append(f"throttling happened since boot ({', '.join(past)}): check the power supply and cooling")
    if conditions.get("thermal_throttle_count"):
        warnings.append(f"{conditions['thermal_throttle_count']} CPU thermal-throttle events since boot")
    temp = conditions.get("temperature_c")
    if temp is not None and temp >= 70:
        warnings.append(f"the device is at {temp:.0f} C: thermal throttling is likely during long runs")
    return warnings


def _energy_warnings(info: dict) -> list[str]:
    """What the energy figures from this device will and will not be."""
    warnings = []
    sensors = [s for s in info.get("available_sensors", []) if s != "estimate"]
    in_use = info.get("energy_sensor") or {}
    if not sensors or in_use.get("kind") == "estimate":
        warnings.append("no power sensor in use: energy figures from this device are estimates, not measurements")
    if in_use.get("under_reads_wall_power"):
        warnings.append("energy comes from the Pi 5 PMIC rails: it under-reads wall power (no input-current channel)")
    if str(in_use.get("board_power_from", "")).startswith("sum of rails"):
        warnings.append("no input rail on this board: energy is the sum of the monitored rails, not board power")
    battery = info.get("battery") or {}
    if battery.get("charging_despite_unplug"):
        warnings.append("'dumpsys battery unplug' only fakes the framework state: the cable still charges, so the "
                        "battery current is not the phone's consumption; disconnect USB and use adb over Wi-Fi")
    elif battery and battery.get("status") not in ("Discharging", "Not charging"):
        warnings.append(f"battery is {battery.get('status')}: no energy figures until the phone runs on battery")
    return warnings


def remove_device(name: str) -> None:
    """Forget a registered device."""
    devices = load_registry()
    if name not in devices:
        raise DeviceConfigError(f"no device named {name!r} is registered")
    del devices[name]
    _save(devices)
