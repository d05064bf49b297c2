"""Raspberry Pi: PMIC ADC parser (both firmware namings), fake vcgencmd, INA219 through pi-ina219, throttle bits."""
import sys
import types

import pytest

from agent_testlib import FIXTURES, write_file
from edgeprune_agent import SensorUnavailable
from edgeprune_agent.conditions import conditions
from edgeprune_agent.sensors import open_sensor
from edgeprune_agent.sensors.rpi import Ina219Source, PmicSource, decode_throttled, parse_pmic_read_adc


def fake_vcgencmd(bin_dir, pmic_text, throttled="throttled=0x0"):
    """A vcgencmd script answering pmic_read_adc from a file (rewritable by a test) and get_throttled."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    (bin_dir / "pmic.txt").write_text(pmic_text)
    write_file(bin_dir, "vcgencmd", "#!/bin/sh\n"
               f'case "$1" in pmic_read_adc) cat "{bin_dir}/pmic.txt";; get_throttled) echo "{throttled}";;\n'
               '*) echo "error=1 error_msg=\\"Command not registered\\""; exit 1;; esac\n').chmod(0o755)
    return bin_dir


def test_recent_firmware_rails():
    parsed = parse_pmic_read_adc((FIXTURES / "rpi5_pmic_read_adc.txt").read_text())
    rails = parsed["rails"]
    assert len(rails) == 12 and "0V8_AON(16)" in rails
    core = rails["VDD_CORE(7)"]
    assert (core["current_channel"], core["volt_channel"]) == (7, 15)
    assert core["watts"] == pytest.approx(2.12413 * 0.8606585)
    assert rails["0V8_AON(16)"]["volt_channel"] == 19 and rails["HDMI(22)"]["volt_channel"] == 23
    assert parsed["voltage_only"] == {"EXT5V": 5.08571, "BATT": 0.0051282}
    assert parsed["total_w"] == pytest.approx(sum(r["amps"] * r["volts"] for r in rails.values()))
    assert 2.5 < parsed["total_w"] < 4.0


def test_early_firmware_duplicate_label_is_keyed_by_channel():
    rails = parse_pmic_read_adc((FIXTURES / "rpi5_pmic_read_adc_early_fw.txt").read_text())["rails"]
    assert "0V8_SYS(6)" in rails and len(rails) == 12
    assert (rails["1V1_SYS(5)"]["volt_channel"], rails["1V1_SYS(16)"]["volt_channel"]) == (13, 19)
    assert rails["1V1_SYS(16)"]["watts"] == pytest.approx(0.0051282 * 0.797655)
    assert rails["1V1_SYS(5)"]["watts"] == pytest.approx(0.1864026 * 1.106226)


def test_unpaired_or_empty_output_is_refused():
    text = (FIXTURES / "rpi5_pmic_read_adc.txt").read_text().replace("VDD_CORE_V volt(15)", "VDD_UNNAMED_V volt(15)")
    with pytest.raises(SensorUnavailable, match="no voltage line pairs with VDD_CORE"):
        parse_pmic_read_adc(text)
    with pytest.raises(SensorUnavailable, match="not a Pi 5"):
        parse_pmic_read_adc('error=1 error_msg="Command not registered"\n')


def test_pmic_source_through_fake_vcgencmd(tmp_path):
    bin_dir = fake_vcgencmd(tmp_path / "bin", (FIXTURES / "rpi5_pmic_read_adc.txt").read_text())
    source = PmicSource(str(bin_dir))
    assert source.read().watts == pytest.approx(
        parse_pmic_read_adc((FIXTURES / "rpi5_pmic_read_adc.txt").read_text())["total_w"])
    assert source.describe()["under_reads_wall_power"] is True
    assert "under-reads wall" in source.describe()["scope"]
    sensor = open_sensor("auto", str(tmp_path / "root"), bin_dir=str(bin_dir))
    assert sensor.name == "rpi_pmic"
    sensor.close()
    with pytest.raises(SensorUnavailable, match="not found"):
        PmicSource(str(tmp_path / "empty"))


def test_throttle_bits_from_vcgencmd_on_every_conditions_call(tmp_path):
    bin_dir = fake_vcgencmd(tmp_path / "bin", "", throttled="throttled=0x50005")
    cond = conditions(str(tmp_path / "root"), str(bin_dir))
    assert cond["throttled"] is True and cond["throttle_flags"]["source"] == "vcgencmd get_throttled"
    assert cond["throttle_flags"]["under_voltage"] and cond["throttle_flags"]["throttled_occurred"]
    flags = decode_throttled(0x80008)
    assert flags["soft_temp_limit"] and flags["soft_temp_limit_occurred"] and not flags["under_voltage"]
    assert conditions(str(tmp_path / "root"), str(tmp_path / "nobin"))["throttle_flags"] is None


def test_ina219_through_pi_ina219(monkeypatch):
    readings = iter([1500.0, 2500.0])

    class FakeINA219:
        def __init__(self, shunt_ohms, busnum=None, address=0x40):
            self.args = (shunt_ohms, busnum, address)

        def configure(self):
            pass

        def power(self):
            return next(readings)

        def voltage(self):
            return 5.1

        def current(self):
            return 400.0

    monkeypatch.setitem(sys.modules, "ina219", types.SimpleNamespace(INA219=FakeINA219))
    source = Ina219Source(shunt_ohms=0.05, address=0x41)
    assert source._ina.args == (0.05, None, 0x41)
    assert source.read().watts == 1.5 and source.read().extra == {"bus_v": 5.1, "current_ma": 400.0}
    assert source.describe()["i2c_address"] == "0x41"


def test_ina219_missing_library_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "ina219", None)
    with pytest.raises(SensorUnavailable, match=r"edgeprune-agent\[pi\]"):
        Ina219Source()
