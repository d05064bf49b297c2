"""RAPL powercap sensor on fake sysfs trees, the CPU-time estimate, and the sensor registry."""
import builtins
import os
import time
from pathlib import Path

import pytest

from agent_testlib import FIXTURES, write_sysfs
from edgeprune_agent import SensorUnavailable
from edgeprune_agent.sensors import available_sensors, open_sensor
from edgeprune_agent.sensors.base import EnergyReading
from edgeprune_agent.sensors.estimate import CpuTimeEstimateSensor
from edgeprune_agent.sensors.rapl import RaplSensor, discover_zones

ZONE0 = "sys/class/powercap/intel-rapl:0/energy_uj"


def _series():
    """(expected joules, energy_uj values) from the wrap-around fixture."""
    lines = (FIXTURES / "rapl_energy_uj_series_wraparound.csv").read_text().splitlines()
    header = " ".join(line for line in lines if line.startswith("#"))
    expected = float(header.split("Expected total = ")[1].split(" J")[0])
    values = [int(line.split(",")[1]) for line in lines if line and line[0].isdigit()]
    return expected, values


def _write_atomic(path: Path, value: int) -> None:
    """Replace a counter file in one step so a concurrent reader never sees it half-written."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(f"{value}\n")
    os.replace(tmp, path)


@pytest.fixture
def intel_root(tmp_path):
    write_sysfs(tmp_path, "rapl_intel_powercap_sysfs.txt")
    return tmp_path


def test_discovery_keeps_packages_and_skips_psys_and_subzones(intel_root):
    zones = discover_zones(str(intel_root))
    assert [(z.name, z.max_energy_range_uj) for z in zones] == [("package-0", 262143328850)]
    assert zones[0].path.endswith("intel-rapl:0")


def test_amd_zones_use_the_same_layout(tmp_path):
    write_sysfs(tmp_path, "rapl_amd_powercap_sysfs.txt")
    assert [z.name for z in discover_zones(str(tmp_path))] == ["package-0", "package-1"]


def test_replayed_series_with_wraparound_totals_expected(intel_root):
    expected, values = _series()
    assert expected == 54.110251
    counter = intel_root / ZONE0
    _write_atomic(counter, values[0])
    sensor = RaplSensor(str(intel_root), poll_interval_s=1.0)
    sensor.start()
    for value in values[1:]:
        _write_atomic(counter, value)
        sensor.poll()
    reading = sensor.stop()
    assert reading.joules == pytest.approx(expected, rel=1e-6)
    assert (reading.kind, reading.source, reading.params["wraps"]) == ("measured", "rapl", 1)
    assert reading.params["zones"] == ["package-0"]


def test_background_poller_counts_repeated_wraps(intel_root):
    max_range = 262143328850
    counter = intel_root / ZONE0
    # each step adds just over half the range, so the counter wraps three times; only the thread polls
    values = [max_range - 100_000]
    for _ in range(6):
        values.append((values[-1] + max_range // 2 + 1) % (max_range + 1))
    _write_atomic(counter, values[0])
    sensor = RaplSensor(str(intel_root), poll_interval_s=0.01)
    sensor.start()
    for value in values[1:]:
        time.sleep(0.15)
        _write_atomic(counter, value)
    time.sleep(0.15)
    reading = sensor.stop()
    assert reading.joules == pytest.approx(6 * (max_range // 2 + 1) / 1e6, rel=1e-9)
    assert reading.params["wraps"] == 3


def test_unreadable_energy_uj_says_run_as_root(intel_root, monkeypatch):
    real_open = builtins.open

    def open_as_unprivileged(path, *args, **kwargs):
        if str(path).endswith("energy_uj"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", open_as_unprivileged)
    with pytest.raises(SensorUnavailable) as info:
        RaplSensor(str(intel_root))
    message = str(info.value)
    assert "permission denied" in message and "root" in message and "chmod" in message
    assert "intel-rapl:0/energy_uj" in message
    fallback = open_sensor("auto", str(intel_root))
    assert isinstance(fallback, CpuTimeEstimateSensor)
    assert "permission denied" in fallback.note
    assert available_sensors(str(intel_root)) == ["estimate"]


def test_registry_on_rapl_host(intel_root):
    assert available_sensors(str(intel_root)) == ["rapl", "estimate"]
    assert isinstance(open_sensor("auto", str(intel_root)), RaplSensor)
    assert open_sensor("none", str(intel_root)) is None


def test_registry_without_sensor(tmp_path):
    assert available_sensors(str(tmp_path)) == ["estimate"]
    sensor = open_sensor("auto", str(tmp_path), watts_per_busy_core=4.0)
    assert isinstance(sensor, CpuTimeEstimateSensor) and sensor.watts_per_busy_core == 4.0
    assert sensor.note.startswith("no power sensor on this host")
    with pytest.raises(SensorUnavailable, match="no RAPL package zones"):
        open_sensor("rapl", str(tmp_path))
    with pytest.raises(ValueError, match="unknown sensor"):
        open_sensor("ina4000", str(tmp_path))


def test_estimate_is_cpu_time_times_watts():
    sensor = CpuTimeEstimateSensor(watts_per_busy_core=5.0)
    sensor.start()
    deadline = time.process_time() + 0.2
    while time.process_time() < deadline:
        pass
    reading = sensor.stop()
    assert reading.kind == "estimate" and reading.source == "estimate"
    assert reading.method == "cpu_time_x_power"
    assert reading.params["cpu_time_s"] >= 0.15
    assert reading.joules == pytest.approx(reading.params["cpu_time_s"] * 5.0)
    assert reading.params["note"] == "no power sensor on this host"


def test_argument_checks():
    with pytest.raises(ValueError):
        EnergyReading(joules=1.0, source="x", kind="guess", method="m")
    with pytest.raises(ValueError):
        CpuTimeEstimateSensor(watts_per_busy_core=0)
    with pytest.raises(ValueError, match="poll_interval_s"):
        RaplSensor("/", poll_interval_s=5.0)


def test_estimate_for_another_process_uses_psutil():
    import psutil
    sensor = CpuTimeEstimateSensor(watts_per_busy_core=2.0, process=psutil.Process())
    sensor.start()
    deadline = time.process_time() + 0.1
    while time.process_time() < deadline:
        pass
    reading = sensor.stop()
    assert reading.params["cpu_time_s"] >= 0.05
    assert reading.joules == pytest.approx(reading.params["cpu_time_s"] * 2.0)
