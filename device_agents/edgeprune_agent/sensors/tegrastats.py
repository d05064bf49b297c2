"""Parse `tegrastats` lines (JetPack 4/5/6 and the 3-value format) and stream board power from it."""
from __future__ import annotations

import re
import subprocess
import threading
from typing import Any, Dict, Optional

from ..commands import spawn_command
from ..errors import SensorUnavailable
from .base import PowerReading, PowerSource

INPUT_RAILS = ("VDD_IN", "POM_5V_IN")
_DATE = re.compile(r"^(\d\d-\d\d-\d{4} \d\d:\d\d:\d\d) ")
_RAIL = re.compile(r"(?:^|\s)([A-Za-z][A-Za-z0-9_]*) (\d+)(mW)?/(\d+)(?:mW)?(?:/(\d+)(?:mW)?)?(?=\s|$)")
_TEMP = re.compile(r"(?:^|\s)([A-Za-z][A-Za-z0-9_]*)@(-?\d+(?:\.\d+)?)C(?:/(-?\d+(?:\.\d+)?)C)?(?=\s|$)")
_CPU = re.compile(r"CPU \[([^\]]*)\]")
_RAM = re.compile(r"RAM (\d+)/(\d+)MB")
_FREQ = re.compile(r"(EMC_FREQ|GR3D_FREQ|GR3D2_FREQ) (\d+)%(?:@\[?([\d,]+)\]?)?")


def _cpus(text: str) -> list:
    """'34%@1479,off' -> [{'load_pct': 34, 'freq_mhz': 1479}, {'online': False}]."""
    cpus = []
    for item in text.split(","):
        load, _, freq = item.strip().partition("%@")
        if load == "off" or not freq:
            cpus.append({"online": False})
        else:
            cpus.append({"load_pct": int(load.rstrip("%")), "freq_mhz": int(freq)})
    return cpus


def parse_line(line: str) -> Dict[str, Any]:
    """One tegrastats line -> rails (mW: current, average[, third]), temps, CPU, EMC/GR3D, RAM."""
    line = line.strip()
    out: Dict[str, Any] = {"timestamp": None, "rails_mw": {}, "temps_c": {}, "cpu": [], "freqs": {}}
    date = _DATE.match(line)
    if date:
        out["timestamp"] = date.group(1)
    for name, cur, unit, avg, third in _RAIL.findall(line):
        if name in ("RAM", "SWAP", "IRAM", "NC"):
            continue
        rail = {"current": int(cur), "average": int(avg)}
        if third:
            rail["third"] = int(third)  # meaning undocumented; kept, not used
        out["rails_mw"][name] = rail
        out["power_unit"] = "mW" if unit else "mW (implied, JetPack 4 prints bare numbers)"
    for name, value, _second in _TEMP.findall(line):
        if float(value) > -40:  # -256C marks a powered-off sensor (CV0@-256C)
            out["temps_c"][name] = float(value)
    cpu = _CPU.search(line)
    if cpu:
        out["cpu"] = _cpus(cpu.group(1))
    for name, load, freqs in _FREQ.findall(line):
        out["freqs"][name] = {"load_pct": int(load),
                              "freq_mhz": [int(f) for f in freqs.split(",")] if freqs else None}
    ram = _RAM.search(line)
    if ram:
        out["ram_mb"] = {"used": int(ram.group(1)), "total": int(ram.group(2))}
    return out


def board_power_mw(parsed: Dict[str, Any]) -> Optional[tuple]:
    """(milliwatts, where from) of the board: input rail when present, else the rail sum; None without rails."""
    rails = parsed["rails_mw"]
    if not rails:
        return None
    for name in INPUT_RAILS:
        if name in rails:
            return float(rails[name]["current"]), f"input rail {name}"
    return float(sum(r["current"] for r in rails.values())), "sum of rails (no VDD_IN/POM_5V_IN)"


class TegrastatsSource(PowerSource):
    """Runs `tegrastats --interval N` and serves the latest parsed board power."""

    name = "tegrastats"

    def __init__(self, bin_dir: Optional[str] = None, interval_ms: int = 100, first_line_s: float = 5.0):
        self.refresh_s = interval_ms / 1000.0
        self._proc = spawn_command(["tegrastats", "--interval", str(interval_ms)], bin_dir)
        self._latest: Optional[Dict[str, Any]] = None
        self._ready = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._reader, name="tegrastats-reader", daemon=True)
        self._thread.start()
        if not self._ready.wait(first_line_s):
            self.close()
            raise SensorUnavailable("tegrastats printed no line with power rails")

    def _reader(self) -> None:
        """Parse each line as it arrives; keep the latest one that has rails."""
        for line in self._proc.stdout:
            parsed = parse_line(line)
            if parsed["rails_mw"]:
                with self._lock:
                    self._latest = parsed
                self._ready.set()

    def read(self) -> PowerReading:
        """Board power of the latest line."""
        with self._lock:
            parsed = self._latest
        if parsed is None or self._proc.poll() is not None:
            raise SensorUnavailable("tegrastats is not running")
        milliwatts, source = board_power_mw(parsed)
        rails = {n: r["current"] / 1000.0 for n, r in parsed["rails_mw"].items()}
        return PowerReading(watts=milliwatts / 1000.0, rails_w=rails, extra={"board_power_from": source})

    def describe(self) -> Dict[str, Any]:
        """Interval and scope."""
        return {"interval_s": self.refresh_s, "note": "tegrastats' instantaneous (first) value per rail"}

    def close(self) -> None:
        """Stop tegrastats."""
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                self._proc.kill()
        if self._proc.stdout is not None:
            self._proc.stdout.close()
