"""Android battery: unit (uA vs mA) and sign normalisation, charge_counter cross-check, dumpsys, sysfs sensor."""
import pytest

from agent_testlib import FIXTURES, write_file
from edgeprune_agent import SensorUnavailable
from edgeprune_agent.sensors.battery import (BatterySample, BatterySource, cross_check, infer_convention,
                                             parse_dumpsys_battery, parse_grep_output, sample_from_values)


def _quirk_devices():
    """The two vendor devices of the quirks fixture, as {file: value} dicts."""
    text = (FIXTURES / "android_battery_sysfs_vendor_quirks.txt").read_text()
    parts = text.split("# --- device ")[1:]
    return [parse_grep_output(part.split("\n", 1)[1]) for part in parts]


def test_pixel_abi_microamps_negative_while_discharging():
    values = parse_grep_output((FIXTURES / "android_battery_sysfs_pixel_discharging.txt").read_text())
    assert values["current_now"] == "-412500" and "uevent" not in values
    sample = sample_from_values(values, 0.0)
    conv = infer_convention([sample])
    assert (conv.current_scale_to_ua, conv.discharge_sign) == (1.0, -1)
    assert conv.draw_w(sample) == pytest.approx(0.4125 * 3.874)  # ~1.6 W as recorded


def test_vendor_quirks_positive_sign_and_milliamps():
    device_a, device_b = (sample_from_values(v, 0.0) for v in _quirk_devices())
    conv_a, conv_b = infer_convention([device_a]), infer_convention([device_b])
    assert (conv_a.current_scale_to_ua, conv_a.discharge_sign) == (1.0, 1)
    assert (conv_b.current_scale_to_ua, conv_b.discharge_sign) == (1000.0, -1)
    assert "magnitude" in conv_b.unit_method
    assert conv_a.draw_w(device_a) == pytest.approx(0.418 * 3.856)
    assert conv_b.draw_w(device_b) == pytest.approx(0.421 * 3.812)
    for watts in (conv_a.draw_w(device_a), conv_b.draw_w(device_b)):
        assert 1.5 < watts < 1.7  # both devices really drain ~1.6 W


def test_charge_counter_overrides_the_magnitude_guess():
    # 8 mA reported in uA (deep idle) looks like mA by magnitude; the counter says uA, and the sign convention
    drain_ua, seconds = 8000, 3600.0
    samples = [BatterySample(0.0, 8000, 3900000, "Discharging", 2_000_000),
               BatterySample(seconds, 8000, 3900000, "Discharging", 2_000_000 - drain_ua)]
    conv = infer_convention(samples)
    assert (conv.current_scale_to_ua, conv.discharge_sign) == (1.0, 1)
    assert conv.unit_method == "charge_counter cross-check" and conv.sign_method == "charge_counter direction"
    check = cross_check(conv, samples)
    assert check["status"] == "checked" and check["ratio"] == pytest.approx(1.0)
    assert infer_convention(samples[:1]).current_scale_to_ua == 1000.0  # what magnitude alone would say


def test_mA_device_confirmed_by_charge_counter():
    samples = [BatterySample(0.0, -421, 3812000, "Discharging", 1_988_000),
               BatterySample(600.0, -421, 3812000, "Discharging", 1_988_000 - 70_167)]
    conv = infer_convention(samples)
    assert (conv.current_scale_to_ua, conv.discharge_sign) == (1000.0, -1)
    assert cross_check(conv, samples)["ratio"] == pytest.approx(1.0, rel=0.01)
    short = [samples[0], BatterySample(1.0, -421, 3812000, "Discharging", 1_988_000)]
    assert "too short" in cross_check(conv, short)["status"]


def test_charging_is_refused():
    with pytest.raises(SensorUnavailable, match="charging"):
        infer_convention([BatterySample(0.0, 500000, 4200000, "Charging", 3_000_000)])


def test_dumpsys_unplug_does_not_prove_battery_power():
    parsed = parse_dumpsys_battery((FIXTURES / "android_dumpsys_battery_after_unplug.txt").read_text())
    assert parsed["updates_stopped"] and not parsed["any_powered"]
    assert parsed["status"] == "Charging" and parsed["charging_despite_unplug"]
    assert parsed["fields"]["Charge counter"] == "3421000" and parsed["fields"]["voltage"] == "4211"


def test_battery_source_on_a_fake_power_supply_tree(tmp_path):
    base = "sys/class/power_supply/battery"
    for name, value in (("current_now", "-421"), ("voltage_now", "3812000"), ("status", "Discharging"),
                        ("charge_counter", "1988000")):
        write_file(tmp_path, f"{base}/{name}", value + "\n")
    source = BatterySource(str(tmp_path), refresh_s=0.01)
    source.begin_window()
    assert source.read().watts == pytest.approx(0.421 * 3.812)
    window = source.end_window()
    assert window["convention"]["current_scale_to_ua"] == 1000.0 and not window["charging_during_window"]
    (tmp_path / base / "status").write_text("Charging\n")
    with pytest.raises(SensorUnavailable):
        BatterySource(str(tmp_path))
