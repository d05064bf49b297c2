"""Android phones over adb: push a TFLite model and benchmark_model, run it pinned to cores, read the battery."""
from __future__ import annotations

import hashlib
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Protocol

from edgeprune_agent.benchmark_model import (BenchmarkOutputError, latency_from_run, map_ops_to_layers,
                                             parse_benchmark_output)
from edgeprune_agent.sensors.battery import (DISCHARGING, BatterySample, cross_check, infer_convention,
                                             parse_dumpsys_battery)
from edgeprune_agent.errors import SensorUnavailable

from edgeprune.measure.devices import DeviceUnavailable, MeasurementRejected, parse_result
from edgeprune.measure.settings import MeasureSettings
from edgeprune.measurement import Measurement

REMOTE_DIR = "/data/local/tmp/edgeprune"
BAT = "/sys/class/power_supply/battery"
PROPS = ("ro.product.manufacturer", "ro.product.model", "ro.board.platform", "ro.product.cpu.abi",
         "ro.build.version.release")
CONDITIONS_SCRIPT = (
    "for c in /sys/devices/system/cpu/cpu[0-9]*; do f=$c/cpufreq; echo \"CPU ${c##*cpu} "
    "$(cat $f/scaling_governor 2>/dev/null || echo -) $(cat $f/scaling_cur_freq 2>/dev/null || echo -) "
    "$(cat $f/cpuinfo_max_freq 2>/dev/null || echo -)\"; done; "
    "for z in /sys/class/thermal/thermal_zone*; do echo \"TZ $(cat $z/temp 2>/dev/null || echo -) "
    "$(cat $z/type 2>/dev/null)\"; done")


class CommandRunner(Protocol):
    """What AndroidDevice needs from adb (tests inject a fake that records calls)."""

    def shell(self, command: str, timeout_s: float = 600.0) -> str:
        """Run a shell command on the phone; stdout and stderr together."""

    def push(self, data: bytes, remote: str, mode: int = 0o644) -> None:
        """Write bytes to a path on the phone."""


class AdbRunner:
    """CommandRunner backed by adbutils (optional extra `android`)."""

    def __init__(self, serial: str):
        try:
            import adbutils
        except ImportError as exc:
            raise DeviceUnavailable("adb support needs adbutils: pip install 'edgeprune[android]'") from exc
        self._errors = (adbutils.AdbError, OSError)
        try:
            self._device = adbutils.AdbClient().device(serial)
        except self._errors as exc:
            raise DeviceUnavailable(f"adb device {serial!r} not reachable: {exc}") from exc

    def shell(self, command: str, timeout_s: float = 600.0) -> str:
        """adb shell, stderr folded into stdout."""
        try:
            return self._device.shell(["sh", "-c", command + " 2>&1"], timeout=timeout_s)
        except self._errors as exc:
            raise DeviceUnavailable(f"adb shell failed: {exc}") from exc

    def push(self, data: bytes, remote: str, mode: int = 0o644) -> None:
        """adb push from memory."""
        try:
            self._device.sync.push(data, remote, mode=mode)
        except self._errors as exc:
            raise DeviceUnavailable(f"adb push to {remote} failed: {exc}") from exc


def run_script(model: str, settings: MeasureSettings, cores: str, use_xnnpack: bool, min_secs: float,
               interval_s: float, idle_s: float) -> str:
    """Shell script: battery sampler (idle, load, idle) around a pinned benchmark_model run with op profiling."""
    bench = (f"taskset {cores} ./benchmark_model --graph={model} --num_threads={settings.threads} "
             f"--warmup_runs={settings.warmup} --num_runs={settings.min_repeats} --min_secs={min_secs:g} "
             f"--max_secs={settings.max_duration_s:g} --enable_op_profiling=true "
             f"--use_xnnpack={'true' if use_xnnpack else 'false'}")
    sample = (f"s() {{ while true; do echo \"EPBAT $1 $(cut -d' ' -f1 /proc/uptime) $(cat {BAT}/current_now) "
              f"$(cat {BAT}/voltage_now) $(cat {BAT}/charge_counter 2>/dev/null || echo -) "
              f"$(cat {BAT}/status)\"; sleep {interval_s:g}; done; }}")
    return (f"cd {REMOTE_DIR} && {sample}; s idle0 & P=$!; sleep {idle_s:g}; kill $P; "
            f"s load & P=$!; {bench} 2>&1; echo \"EPRC $?\"; kill $P; "
            f"s idle1 & P=$!; sleep {idle_s:g}; kill $P")


def parse_battery_lines(text: str) -> dict[str, list[BatterySample]]:
    """EPBAT lines of run_script -> samples per phase (idle0, load, idle1)."""
    phases: dict[str, list[BatterySample]] = {"idle0": [], "load": [], "idle1": []}
    for line in text.splitlines():
        parts = line.split(None, 6)
        if len(parts) < 7 or parts[0] != "EPBAT" or parts[1] not in phases:
            continue
        try:
            phases[parts[1]].append(BatterySample(
                t=float(parts[2]), current_raw=int(parts[3]), voltage_raw=int(parts[4]), status=parts[6],
                charge_counter_uah=None if parts[5] == "-" else int(parts[5])))
        except ValueError:
            continue
    return phases


def battery_energy(phases: dict[str, list[BatterySample]], latency_s: float) -> dict | None:
    """Energy per inference from battery power: total = P_load x latency, marginal = (P_load - P_idle) x latency."""
    every = phases["idle0"] + phases["load"] + phases["idle1"]
    if len(phases["load"]) < 3 or not phases["idle0"] or not phases["idle1"]:
        return None
    try:
        conv = infer_convention(every)
    except SensorUnavailable:
        return None
    load = phases["load"]
    thirds = [load[i * len(load) // 3:(i + 1) * len(load) // 3] for i in range(3)]
    load_w = statistics.median(statistics.fmean(conv.draw_w(s) for s in part) for part in thirds)
    idle_w = statistics.fmean(conv.draw_w(s) for s in phases["idle0"] + phases["idle1"])
    return {"per_inference": load_w * latency_s * 1000, "total_per_inference": load_w * latency_s * 1000,
            "marginal_per_inference": (load_w - idle_w) * latency_s * 1000, "idle_power_w": idle_w,
            "load_power_w": load_w, "source": "android_battery", "kind": "measured",
            "method": "battery current_now x voltage_now sampled during benchmark_model (median of 3 windows) "
                      "x mean latency; idle sampled before and after",
            "params": {"convention": vars(conv), "charge_counter_check": cross_check(conv, every),
                       "samples": len(every), "charging_during_run": any(s.status not in DISCHARGING
                                                                         for s in every),
                       "scope": "whole phone incl. screen and radios"}}


def _mhz(khz: str) -> float | None:
    """'1800000' (kHz) -> 1800.0; '-' -> None."""
    return int(khz) / 1000 if khz.isdigit() else None


def per_layer_latency(m: Measurement, space) -> dict:
    """Map benchmark_model's per-op rows onto a LayerSpace's conv/linear layers (execution order)."""
    return map_ops_to_layers(m.result.get("per_op") or [], [(l.name, l.signature.op) for l in space.layers])


def parse_conditions(text: str) -> dict:
    """Output of CONDITIONS_SCRIPT -> the agent's conditions keys (governor, clocks, temperatures)."""
    cpus, temps = [], {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 5 and parts[0] == "CPU":
            cpus.append({"cpu": int(parts[1]), "governor": None if parts[2] == "-" else parts[2],
                         "cur_mhz": _mhz(parts[3]), "max_mhz": _mhz(parts[4])})
        elif len(parts) >= 2 and parts[0] == "TZ" and parts[1].lstrip("-").isdigit():
            milli = int(parts[1])
            if -40_000 <= milli <= 150_000:
                temps[parts[2] if len(parts) > 2 else f"zone{len(temps)}"] = milli / 1000
    governors = {c["governor"] for c in cpus if c["governor"]}
    curs = [c["cur_mhz"] for c in cpus if c["cur_mhz"] is not None]
    return {"governor": (governors.pop() if len(governors) == 1 else "mixed") if governors else None,
            "cpu_freq_mhz": round(sum(curs) / len(curs), 1) if curs else None,
            "temperature_c": max(temps.values()) if temps else None, "throttled": None,
            "cpufreq": cpus, "temperatures_c": temps}


class AndroidDevice:
    """A phone reached over adb; measures .tflite models with the user's benchmark_model binary."""

    def __init__(self, name: str, serial: str, benchmark_binary: str | Path, runner: CommandRunner | None = None,
                 cores: str = "f0", use_xnnpack: bool = False, energy_window_s: float = 10.0,
                 battery_interval_s: float = 0.25, idle_s: float = 2.0):
        self.name, self.serial, self.cores, self.use_xnnpack = name, serial, cores, use_xnnpack
        self.binary = Path(benchmark_binary).expanduser().read_bytes()
        self.binary_version = "benchmark_model sha256:" + hashlib.sha256(self.binary).hexdigest()[:12]
        self.runner = runner if runner is not None else AdbRunner(serial)
        self.energy_window_s, self.interval_s, self.idle_s = energy_window_s, battery_interval_s, idle_s
        self._binary_pushed = False

    def info(self) -> dict:
        """Phone identity (getprop), cores, clocks, temperatures and battery state."""
        props = self.runner.shell(" ; ".join(f"getprop {p}" for p in PROPS)).splitlines()
        values = dict(zip(PROPS, (p.strip() for p in props + [""] * len(PROPS))))
        cores = int(self.runner.shell("nproc").strip() or 0)
        stable = [values["ro.product.manufacturer"], values["ro.product.model"], values["ro.board.platform"],
                  values["ro.product.cpu.abi"], cores]
        dumpsys = parse_dumpsys_battery(self.runner.shell("dumpsys battery"))
        conditions = parse_conditions(self.runner.shell(CONDITIONS_SCRIPT))
        return {"hostname": self.serial, "cpu_model": values["ro.board.platform"],
                "arch": values["ro.product.cpu.abi"], "cores_logical": cores,
                "os": {"system": "Android", "release": values["ro.build.version.release"]},
                "device_model": f"{values['ro.product.manufacturer']} {values['ro.product.model']}",
                "runtime_versions": {"litert": self.binary_version}, "cpufreq": conditions["cpufreq"],
                "conditions": conditions, "battery": dumpsys,
                "available_sensors": ["android_battery"] if dumpsys["status"] in DISCHARGING else [],
                "fingerprint_id": hashlib.sha256(repr(stable).encode()).hexdigest()[:16]}

    def _push(self, model_bytes: bytes) -> str:
        """Push benchmark_model (once) and the model; return the model's remote file name."""
        self.runner.shell(f"mkdir -p {REMOTE_DIR}")
        if not self._binary_pushed:
            self.runner.push(self.binary, f"{REMOTE_DIR}/benchmark_model", mode=0o755)
            self._binary_pushed = True
        name = hashlib.sha256(model_bytes).hexdigest()[:16] + ".tflite"
        self.runner.push(model_bytes, f"{REMOTE_DIR}/{name}")
        return name

    def measure(self, model_bytes: bytes, runtime: str, settings: MeasureSettings,
                profile: bool = False) -> Measurement:
        """Run benchmark_model on the phone; latency, per-op table and battery energy in the schema-1 layout
        (``profile`` changes nothing: the per-op table is always there)."""
        if runtime != "litert":
            raise MeasurementRejected(f"{self.name}: Android devices run .tflite models only (--runtime litert)")
        started, wall0 = datetime.now(timezone.utc).isoformat(), time.perf_counter()
        model = self._push(model_bytes)
        before = parse_conditions(self.runner.shell(CONDITIONS_SCRIPT))
        on_battery = self.runner.shell(f"cat {BAT}/status").strip() in DISCHARGING
        min_secs = max(settings.min_duration_s, self.energy_window_s if on_battery else 0.0)
        script = run_script(model, settings, self.cores, self.use_xnnpack, min_secs, self.interval_s,
                            self.idle_s)
        output = self.runner.shell(script, timeout_s=settings.max_duration_s + 4 * self.idle_s + 120)
        after = parse_conditions(self.runner.shell(CONDITIONS_SCRIPT))
        try:
            bench = parse_benchmark_output(output)
        except BenchmarkOutputError as exc:
            raise MeasurementRejected(f"{self.name}: {exc}") from exc
        latency = latency_from_run(bench["run"])
        energy = battery_energy(parse_battery_lines(output), latency["mean"] / 1000) if on_battery else None
        result = {"schema": 1, "latency_ms": latency, "energy_mj": energy,
                  "runtime": {"name": "litert", "version": self.binary_version, "threads": settings.threads},
                  "settings": {"warmup": settings.warmup, "min_repeats": settings.min_repeats,
                               "min_duration_s": float(settings.min_duration_s),
                               "max_duration_s": float(settings.max_duration_s)},
                  "inputs": {}, "model_sha256": hashlib.sha256(model_bytes).hexdigest(),
                  "conditions_before": {**before, "on_battery": on_battery}, "conditions_after": after,
                  "device": {"serial": self.serial}, "per_op": bench["ops"],
                  "benchmark": {k: bench.get(k) for k in ("run", "warmup", "timings_us", "layout")}
                  | {"cores": self.cores, "op_profiling": True, "xnnpack": self.use_xnnpack},
                  "started_at": started, "finished_at": datetime.now(timezone.utc).isoformat(),
                  "wall_s": time.perf_counter() - wall0}
        return parse_result(self.name, result)
