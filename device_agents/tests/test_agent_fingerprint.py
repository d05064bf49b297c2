"""Device description and conditions from fake /proc and /sys trees."""
import json
import re

import psutil

from agent_testlib import write_file
from edgeprune_agent import device_info
from edgeprune_agent.fingerprint import conditions, cpu_model, cpufreq, fingerprint_id

X86_CPUINFO = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel\t\t: 158\nmodel name\t: Intel(R) Core(TM) i7-8700 CPU @ 3.20GHz\n"
PI_CPUINFO = ("processor\t: 0\nBogoMIPS\t: 108.00\nCPU part\t: 0xd08\n\n"
              "Hardware\t: BCM2835\nRevision\t: c03114\nModel\t\t: Raspberry Pi 4 Model B Rev 1.4\n")


def _cpu(root, n, governor, cur_khz, max_khz):
    base = f"sys/devices/system/cpu/cpu{n}/cpufreq/"
    write_file(root, base + "scaling_governor", governor + "\n")
    write_file(root, base + "scaling_cur_freq", f"{cur_khz}\n")
    write_file(root, base + "cpuinfo_max_freq", f"{max_khz}\n")


def test_cpu_model_x86_and_arm(tmp_path):
    write_file(tmp_path / "x86", "proc/cpuinfo", X86_CPUINFO)
    write_file(tmp_path / "pi", "proc/cpuinfo", PI_CPUINFO)
    assert cpu_model(str(tmp_path / "x86")) == "Intel(R) Core(TM) i7-8700 CPU @ 3.20GHz"
    assert cpu_model(str(tmp_path / "pi")) == "Raspberry Pi 4 Model B Rev 1.4"


def test_cpufreq_and_conditions(tmp_path):
    _cpu(tmp_path, 0, "performance", 1800000, 1800000)
    _cpu(tmp_path, 1, "performance", 1500000, 1800000)
    write_file(tmp_path, "sys/devices/system/cpu/cpu2/online", "1\n")  # present, no cpufreq
    write_file(tmp_path, "sys/class/thermal/thermal_zone0/temp", "48312\n")
    write_file(tmp_path, "sys/class/thermal/thermal_zone1/temp", "55000\n")
    write_file(tmp_path, "sys/devices/platform/soc/soc:firmware/get_throttled", "50005\n")
    freqs = cpufreq(str(tmp_path))
    assert freqs[0] == {"cpu": 0, "governor": "performance", "cur_mhz": 1800.0, "max_mhz": 1800.0}
    assert freqs[2] == {"cpu": 2, "governor": None, "cur_mhz": None, "max_mhz": None}
    cond = conditions(str(tmp_path))
    assert {k: cond[k] for k in ("governor", "cpu_freq_mhz", "temperature_c", "throttled")} == {
        "governor": "performance", "cpu_freq_mhz": 1650.0, "temperature_c": 55.0, "throttled": True}
    assert cond["temperatures_c"] == {"thermal_zone0": 48.312, "thermal_zone1": 55.0}
    flags = cond["throttle_flags"]  # 0x50005: under-voltage + throttled now, both also since boot
    assert (flags["raw"], flags["source"]) == ("0x50005", "sysfs get_throttled")
    assert flags["under_voltage"] and flags["throttled"] and not flags["arm_freq_capped"]
    assert flags["under_voltage_occurred"] and flags["throttled_occurred"]
    assert not flags["soft_temp_limit_occurred"]
    assert cond["cpufreq"][1]["cur_mhz"] == 1500.0
    _cpu(tmp_path, 1, "ondemand", 600000, 1800000)
    write_file(tmp_path, "sys/devices/platform/soc/soc:firmware/get_throttled", "0\n")
    cond = conditions(str(tmp_path))
    assert (cond["governor"], cond["throttled"]) == ("mixed", False)


def test_conditions_unknown_are_null(tmp_path):
    assert conditions(str(tmp_path)) == {"governor": None, "cpu_freq_mhz": None, "temperature_c": None,
                                         "throttled": None, "cpufreq": conditions(str(tmp_path))["cpufreq"],
                                         "temperatures_c": {}, "devfreq": {}, "throttle_flags": None,
                                         "thermal_throttle_count": None,
                                         "virtualization": {"emulator": None, "hypervisor": None,
                                                            "container": None, "native_timings": True,
                                                            "caveats": []}}


def test_fingerprint_is_stable_and_hardware_only(tmp_path):
    write_file(tmp_path / "a", "proc/cpuinfo", X86_CPUINFO)
    write_file(tmp_path / "b", "proc/cpuinfo", PI_CPUINFO)
    first = fingerprint_id(str(tmp_path / "a"))
    assert re.fullmatch(r"[0-9a-f]{16}", first)
    _cpu(tmp_path / "a", 0, "powersave", 600000, 1800000)  # software state must not change it
    write_file(tmp_path / "a", "sys/class/thermal/thermal_zone0/temp", "70000\n")
    assert fingerprint_id(str(tmp_path / "a")) == first
    assert fingerprint_id(str(tmp_path / "b")) != first


def test_device_info_fields(tmp_path):
    write_file(tmp_path, "proc/cpuinfo", X86_CPUINFO)
    info = device_info(str(tmp_path))
    assert info["cpu_model"] == "Intel(R) Core(TM) i7-8700 CPU @ 3.20GHz"
    assert info["cores_logical"] == psutil.cpu_count(logical=True)
    assert info["memory_total_bytes"] == psutil.virtual_memory().total
    assert info["available_sensors"] == ["estimate"]
    assert "onnxruntime" in info["runtime_versions"]
    assert info["fingerprint_id"] == fingerprint_id(str(tmp_path))
    for key in ("hostname", "arch", "cores_physical", "os", "python", "cpufreq", "conditions"):
        assert key in info
    json.dumps(info, allow_nan=False)


def test_conditions_record_devfreq_thermal_types_and_x86_throttle_counts(tmp_path):
    write_file(tmp_path, "sys/class/devfreq/17000000.gpu/cur_freq", "624750000\n")
    write_file(tmp_path, "sys/class/devfreq/17000000.gpu/max_freq", "1020000000\n")
    write_file(tmp_path, "sys/class/devfreq/17000000.gpu/governor", "nvhost_podgov\n")
    write_file(tmp_path, "sys/class/thermal/thermal_zone0/type", "cpu-thermal\n")
    write_file(tmp_path, "sys/class/thermal/thermal_zone0/temp", "51250\n")
    write_file(tmp_path, "sys/class/thermal/thermal_zone1/type", "CV0-thermal\n")
    write_file(tmp_path, "sys/class/thermal/thermal_zone1/temp", "-256000\n")  # powered-off sensor
    for cpu, core, pkg in ((0, 3, 7), (1, 2, 7)):
        write_file(tmp_path, f"sys/devices/system/cpu/cpu{cpu}/thermal_throttle/core_throttle_count", f"{core}\n")
        write_file(tmp_path, f"sys/devices/system/cpu/cpu{cpu}/thermal_throttle/package_throttle_count", f"{pkg}\n")
    cond = conditions(str(tmp_path))
    assert cond["devfreq"] == {"17000000.gpu": {"cur_mhz": 624.75, "max_mhz": 1020.0, "governor": "nvhost_podgov"}}
    assert cond["temperatures_c"] == {"cpu-thermal": 51.25} and cond["temperature_c"] == 51.25
    assert cond["thermal_throttle_count"] == 3 + 7 + 2 + 7
    assert cond["throttle_flags"] is None and cond["throttled"] is None
