"""Raspberry Pi power: Pi 5 PMIC ADC (`vcgencmd pmic_read_adc`), an external INA219 (pi-ina219), throttle bits."""
from __future__ import annotations

import importlib
import re
from typing import Any, Dict, List, Optional, Tuple

from ..commands import run_command
from ..errors import SensorUnavailable
from .base import PowerReading, PowerSource

_ADC_LINE = re.compile(r"^\s*(\S+)_([AV]) (current|volt)\((\d+)\)=(-?[\d.]+)[AV]\s*$")
PMIC_SCOPE = ("sum of the Pi 5 PMIC rails (A x V per rail). There is no input-current channel: this "
              "under-reads wall/5 V input power (misses PMIC conversion losses, USB, fan, HAT loads)")
THROTTLE_BITS = {0: "under_voltage", 1: "arm_freq_capped", 2: "throttled", 3: "soft_temp_limit",
                 16: "under_voltage_occurred", 17: "arm_freq_capped_occurred", 18: "throttled_occurred",
                 19: "soft_temp_limit_occurred"}


def parse_pmic_read_adc(text: str) -> Dict[str, Any]:
    """Rails keyed 'NAME(current channel)', current/volt lines paired by position, plus voltage-only channels."""
    currents: List[Tuple[str, int, float]] = []
    volts: List[Tuple[str, int, float]] = []
    for line in text.splitlines():
        match = _ADC_LINE.match(line)
        if match:
            name, _suffix, kind, channel, value = match.groups()
            (currents if kind == "current" else volts).append((name, int(channel), float(value)))
    if not currents:
        raise SensorUnavailable("vcgencmd pmic_read_adc printed no current channels (not a Pi 5?)")
    rails: Dict[str, Dict[str, Any]] = {}
    for index, (name, channel, amps) in enumerate(currents):
        if index >= len(volts) or volts[index][0] != name:
            raise SensorUnavailable(f"pmic_read_adc: no voltage line pairs with {name} current({channel})")
        key = f"{name}({channel})"  # labels change between firmware and repeat on early firmware
        v_name, v_channel, volts_v = volts[index]
        rails[key] = {"current_channel": channel, "volt_channel": v_channel, "amps": amps, "volts": volts_v,
                      "watts": amps * volts_v}
    voltage_only = {name: value for name, _ch, value in volts[len(currents):]}
    return {"rails": rails, "voltage_only": voltage_only,
            "total_w": sum(r["watts"] for r in rails.values())}


def decode_throttled(value: int) -> Dict[str, Any]:
    """Named flags of the firmware's get_throttled bit field."""
    flags: Dict[str, Any] = {"raw": hex(value)}
    for bit, name in THROTTLE_BITS.items():
        flags[name] = bool(value >> bit & 1)
    return flags


def parse_get_throttled(text: str) -> int:
    """'throttled=0x50005' (vcgencmd) or '50005' (sysfs, hex) -> integer."""
    value = text.strip().split("=")[-1]
    return int(value, 16)


class PmicSource(PowerSource):
    """Pi 5 on-board PMIC ADC read through `vcgencmd pmic_read_adc` (~23 ms a read, ~10 Hz practical)."""

    name = "rpi_pmic"

    def __init__(self, bin_dir: Optional[str] = None, refresh_s: float = 0.1):
        self.bin_dir = bin_dir
        self.refresh_s = refresh_s
        self.read()

    def read(self) -> PowerReading:
        """One ADC read, summed over the rails."""
        parsed = parse_pmic_read_adc(run_command(["vcgencmd", "pmic_read_adc"], self.bin_dir))
        return PowerReading(watts=parsed["total_w"],
                            rails_w={k: r["watts"] for k, r in parsed["rails"].items()},
                            extra={"voltage_only": parsed["voltage_only"]})

    def describe(self) -> Dict[str, Any]:
        """Scope: the rail sum under-reads wall power."""
        return {"board_power_from": "sum of PMIC rails", "scope": PMIC_SCOPE, "under_reads_wall_power": True}


class Ina219Source(PowerSource):
    """An external INA219 on the Pi's I2C bus (in the supply line), read with pi-ina219."""

    name = "ina219"

    def __init__(self, shunt_ohms: float = 0.1, address: int = 0x40, busnum: Optional[int] = None,
                 refresh_s: float = 0.01):
        try:
            module = importlib.import_module("ina219")
        except ImportError as exc:
            raise SensorUnavailable("pi-ina219 is not installed: pip install 'edgeprune-agent[pi]'") from exc
        self.refresh_s = refresh_s
        self.shunt_ohms, self.address = shunt_ohms, address
        try:
            self._ina = module.INA219(shunt_ohms, busnum=busnum, address=address)
            self._ina.configure()
        except (OSError, RuntimeError, ValueError) as exc:
            raise SensorUnavailable(f"no INA219 at I2C address {hex(address)}: {exc}") from exc

    def read(self) -> PowerReading:
        """Power (mW from the chip) of whatever the INA219 is wired into."""
        try:
            milliwatts = float(self._ina.power())
            volts, milliamps = float(self._ina.voltage()), float(self._ina.current())
        except (OSError, RuntimeError, ValueError) as exc:
            raise SensorUnavailable(f"INA219 read failed: {exc}") from exc
        return PowerReading(watts=milliwatts / 1000.0, extra={"bus_v": volts, "current_ma": milliamps})

    def describe(self) -> Dict[str, Any]:
        """Wiring facts recorded with readings."""
        return {"board_power_from": "external INA219 in the supply line", "shunt_ohms": self.shunt_ohms,
                "i2c_address": hex(self.address)}
