"""Jetson INA3221 (JetPack 4 IIO and JetPack 5/6 hwmon) on fake sysfs trees, and the tegrastats parser."""
import shutil

import pytest

from agent_testlib import FIXTURES, write_sysfs
from edgeprune_agent import SensorUnavailable
from edgeprune_agent.sensors import open_sensor
from edgeprune_agent.sensors.ina3221 import Ina3221Source, discover_rails
from edgeprune_agent.sensors.tegrastats import board_power_mw, parse_line

JP6_DIR = "sys/bus/i2c/drivers/ina3221/1-0040/hwmon"


def _tegrastats_lines():
    """(annotation, line) pairs of the fixture."""
    pairs, note = [], None
    for line in (FIXTURES / "tegrastats_samples.txt").read_text().splitlines():
        if line.startswith("# ["):
            note = line
        elif line and not line.startswith("#"):
            pairs.append((note, line))
    return pairs


def test_jp4_iio_rails_use_the_power_file_and_pom_5v_in(tmp_path):
    write_sysfs(tmp_path, "jetson_jp4_nano_ina3221x_iio.txt")
    rails = discover_rails(str(tmp_path))
    assert [r.name for r in rails] == ["POM_5V_IN", "POM_5V_GPU", "POM_5V_CPU"]
    source = Ina3221Source(str(tmp_path))
    reading = source.read()
    assert reading.watts == pytest.approx(5.976)
    assert reading.rails_w == pytest.approx({"POM_5V_IN": 5.976, "POM_5V_GPU": 1.320, "POM_5V_CPU": 1.165})
    assert source.describe()["board_power_from"].startswith("input rail POM_5V_IN")
    assert "IIO" in source.describe()["driver"]


def test_jp6_hwmon_computes_v_times_i_and_skips_the_shunt_sum(tmp_path):
    write_sysfs(tmp_path, "jetson_jp6_orin_nano_ina3221_hwmon.txt")
    source = Ina3221Source(str(tmp_path))
    assert [r.name for r in source.rails] == ["VDD_IN", "VDD_CPU_GPU_CV", "VDD_SOC"]
    reading = source.read()
    # 5016 mV x 888 mA etc.; the same idle state tegrastats prints as 4454/481/1404 mW
    assert reading.rails_w == pytest.approx({"VDD_IN": 4.454208, "VDD_CPU_GPU_CV": 0.481536,
                                             "VDD_SOC": 1.40448})
    idle_line = next(line for note, line in _tegrastats_lines() if "JP6 R36, Orin Nano devkit, idle" in note)
    for rail, mw in parse_line(idle_line)["rails_mw"].items():
        assert reading.rails_w[rail] * 1000 == pytest.approx(mw["current"], abs=1.0)
    assert reading.watts == reading.rails_w["VDD_IN"]


def test_hwmon_index_is_globbed_and_nc_or_missing_input_rail_falls_back_to_sum(tmp_path):
    write_sysfs(tmp_path, "jetson_jp6_orin_nano_ina3221_hwmon.txt")
    shutil.move(str(tmp_path / JP6_DIR / "hwmon1"), str(tmp_path / JP6_DIR / "hwmon4"))
    (tmp_path / JP6_DIR / "hwmon4" / "in1_label").write_text("NC\n")
    source = Ina3221Source(str(tmp_path))
    assert [r.name for r in source.rails] == ["VDD_CPU_GPU_CV", "VDD_SOC"]
    assert source.read().watts == pytest.approx(0.481536 + 1.40448)
    assert source.describe()["board_power_from"].startswith("sum of rails")


def test_no_ina3221_is_unavailable(tmp_path):
    with pytest.raises(SensorUnavailable, match="no INA3221 rails"):
        Ina3221Source(str(tmp_path))
    write_sysfs(tmp_path, "jetson_jp4_nano_ina3221x_iio.txt")
    sensor = open_sensor("auto", str(tmp_path), bin_dir=str(tmp_path / "nobin"))
    assert sensor.name == "ina3221" and sensor.kind == "measured"
    sensor.close()


def test_every_tegrastats_format_parses():
    parsed = {note.split("]")[0][3:]: parse_line(line) for note, line in _tegrastats_lines()}
    assert len(parsed) == 8
    nano = parsed["JP4 R32, Jetson Nano, non-root"]
    assert nano["timestamp"] is None and "implied" in nano["power_unit"]
    assert nano["rails_mw"]["POM_5V_IN"] == {"current": 5976, "average": 5121}
    assert set(nano["rails_mw"]) == {"POM_5V_IN", "POM_5V_GPU", "POM_5V_CPU"}  # RAM/SWAP are not rails
    assert nano["cpu"][0] == {"load_pct": 34, "freq_mhz": 1479} and nano["ram_mb"] == {"used": 1537, "total": 3964}
    assert nano["temps_c"]["thermal"] == 39.25
    assert board_power_mw(nano) == (5976.0, "input rail POM_5V_IN")
    root = parsed["JP4 R32, Jetson Nano, root: EMC/GR3D carry @MHz, IRAM and APE appear"]
    assert "IRAM" not in root["rails_mw"] and root["freqs"]["GR3D_FREQ"] == {"load_pct": 58, "freq_mhz": [921]}
    tx2 = parsed["JP4 R32, Jetson TX2: two INA3221 (0x40: VDD_SYS_GPU VDD_SYS_SOC VDD_4V0_WIFI, 0x41: VDD_IN "
                 "VDD_SYS_CPU VDD_SYS_DDR)"]
    assert board_power_mw(tx2) == (8848.0, "input rail VDD_IN") and len(tx2["rails_mw"]) == 6
    xavier = parsed["JP4 R32, AGX Xavier: rail names without VDD_ prefix"]
    assert board_power_mw(xavier)[0] == 7841 + 1101 + 2891 + 0 + 1205 + 3446
    assert board_power_mw(xavier)[1].startswith("sum of rails")
    orin = parsed["JP5 R35, AGX Orin devkit: mW suffix, date prefix, NC channels"]
    assert orin["timestamp"] == "04-17-2023 10:21:07" and "NC" not in orin["rails_mw"]
    assert orin["rails_mw"]["VDD_GPU_SOC"] == {"current": 11192, "average": 10584}
    assert "CV0" not in orin["temps_c"] and orin["temps_c"]["tj"] == 52.156  # -256C = sensor off
    assert orin["freqs"]["GR3D2_FREQ"]["freq_mhz"] == [1300]
    load = parsed["JP6 R36, Orin Nano devkit, under inference load"]
    assert board_power_mw(load) == (7912.0, "input rail VDD_IN") and load["freqs"]["GR3D_FREQ"]["freq_mhz"] == [624]
    newest = next(v for k, v in parsed.items() if k.startswith("Newest format"))
    assert newest["rails_mw"]["VIN_SYS_5V0"] == {"current": 5612, "average": 5580, "third": 5704}
    assert newest["temps_c"]["cpu"] == 54.1 and newest["freqs"]["GR3D_FREQ"]["freq_mhz"] == [1300, 1300]
    assert len(newest["cpu"]) == 12
