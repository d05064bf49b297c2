"""Fleet calibration: several agents on loopback ports share one table; a killed agent's jobs go to the others."""
import json
import signal
import sqlite3
import time

import pytest

from conftest import FAST, run_cli, start_agent
from edgeprune.measure.calibrate import calibrate
from edgeprune.measure.devices import DeviceUnavailable, MeasurementRejected
from edgeprune.measure.fleet import FleetMismatch, Job, run_jobs
from edgeprune.measure.registry import add_device, add_group, expand_devices, open_device
from edgeprune.measure.settings import MeasureSettings
from edgeprune.models import build_model
from edgeprune.models.layer_space import build_layer_space
from edgeprune.tables.store import LatencyTable

TINY = MeasureSettings(warmup=1, min_repeats=3, min_duration_s=0.03)


@pytest.fixture
def agents(tmp_path):
    """Three agent processes on loopback, registered as pi-1..pi-3; yields {name: Popen}."""
    token = tmp_path / "fleet.token"
    token.write_text("fleet-token\n")
    procs, urls = {}, {}
    for i in (1, 2, 3):
        procs[f"pi-{i}"], urls[f"pi-{i}"] = start_agent(token, command=("edgeprune_agent",))
        add_device(f"pi-{i}", urls[f"pi-{i}"], token)
    yield procs
    for proc in procs.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=20)


def _rows(path):
    db = sqlite3.connect(path)
    rows = db.execute("SELECT point_key, device_name FROM layer_measurements").fetchall()
    rows += db.execute("SELECT point_key, device_name FROM network_measurements").fetchall()
    db.close()
    return rows


def test_fleet_spreads_jobs_and_survives_a_killed_agent(agents, tmp_path):
    model, shape = build_model("demo_cnn")
    space = build_layer_space(model, shape)
    devices = [open_device(n) for n in ("pi-1", "pi-2", "pi-3")]
    stored = []

    def kill_after_four(phase, done, total, was_stored):
        stored.append(was_stored)
        if sum(stored) == 4:
            agents["pi-2"].send_signal(signal.SIGKILL)

    path = tmp_path / "fleet.sqlite"
    with LatencyTable(path) as table:
        result = calibrate(devices, "demo_cnn", model, space, table, settings=TINY, points=8, network_variants=4,
                           progress=kill_after_four)
    assert list(result.lost_devices) == ["pi-2"] and "did not answer" in result.lost_devices["pi-2"]
    assert result.requeued >= 1
    assert result.points_measured == result.points_planned and result.network_variants_measured == 4
    rows = _rows(path)
    assert len(rows) == len({k for k, _ in rows}) == result.points_planned + 4  # nothing lost, nothing twice
    per_device = {n: sum(1 for _, d in rows if d == n) for n in ("pi-1", "pi-2", "pi-3")}
    assert per_device == result.measured_by and per_device["pi-1"] > 0 and per_device["pi-3"] > 0
    assert result.devices == ["pi-1", "pi-2", "pi-3"]
    with LatencyTable(path) as table:  # resuming with the survivors measures nothing again
        again = calibrate([devices[0], devices[2]], "demo_cnn", model, space, table, settings=TINY, points=8,
                          network_variants=4)
    assert again.points_measured == 0 and again.points_skipped == result.points_planned
    assert len(_rows(path)) == len(rows)


def test_group_on_the_command_line(agents, tmp_path):
    add_group("lab", ["pi-1", "pi-3"])
    assert expand_devices(["lab", "pi-1", "pi-2"]) == ["pi-1", "pi-3", "pi-2"]
    out = run_cli("calibrate", "--device", "lab", "--model", "demo_cnn", "--points", "3", "--network-variants", "2",
                  *FAST, "--json", env={"EDGEPRUNE_TABLES_DIR": str(tmp_path / "tables")})
    summary = json.loads(out.stdout)
    assert summary["devices"] == ["pi-1", "pi-3"] and summary["table"].endswith("lab.sqlite")
    assert sum(summary["measured_by"].values()) == summary["points_measured"] + 2
    both = run_cli("calibrate", "-d", "pi-1", "-d", "pi-2", "--model", "demo_cnn", "--points", "3",
                   "--network-variants", "2", *FAST, "--table", summary["table"], "--json")
    assert json.loads(both.stdout)["points_measured"] == 0  # same hardware class: already measured by lab


def test_every_agent_gone_keeps_rows_and_says_resume(agents, tmp_path):
    model, shape = build_model("demo_cnn")
    space = build_layer_space(model, shape)
    devices = [open_device(n) for n in ("pi-1", "pi-2")]
    count = []

    def kill_both(phase, done, total, was_stored):
        count.append(was_stored)
        if sum(count) == 3:
            agents["pi-1"].send_signal(signal.SIGKILL)
            agents["pi-2"].send_signal(signal.SIGKILL)

    path = tmp_path / "gone.sqlite"
    with LatencyTable(path) as table, pytest.raises(DeviceUnavailable, match="every device of the fleet is gone"):
        calibrate(devices, "demo_cnn", model, space, table, settings=TINY, points=8, network_variants=2,
                  progress=kill_both)
    rows = _rows(path)
    assert len(rows) >= 3 and len(rows) == len({k for k, _ in rows})


class FakeDevice:
    """Measures instantly; dies (DeviceUnavailable) after `lives` jobs."""

    def __init__(self, name, fingerprint="f" * 16, version="1.0", lives=None):
        self.name, self.fp, self.version, self.lives, self.jobs = name, fingerprint, version, lives, []

    def info(self):
        return {"fingerprint_id": self.fp, "runtime_versions": {"onnxruntime": self.version}}

    def measure(self, data, runtime, settings):
        if self.lives is not None and len(self.jobs) >= self.lives:
            raise DeviceUnavailable(f"{self.name} did not answer")
        self.jobs.append(data)
        time.sleep(0.005)
        return {"bytes": data}


def test_run_jobs_hands_a_dead_devices_job_on():
    stored = {}

    def job(i):
        return Job("layers", f"k{i}", lambda i=i: b"%d" % i, lambda name, result, i=i: stored.setdefault(i, name)
                   == name)

    alive, dying = FakeDevice("a"), FakeDevice("b", lives=2)
    stats = run_jobs([alive, dying], (job(i) for i in range(20)), "onnxruntime", TINY)
    assert sorted(stored) == list(range(20)) and stats.lost == {"b": "b did not answer"}
    assert stats.requeued == 1 and stats.measured_by == {"a": 18, "b": 2}


def test_fleet_must_be_one_hardware_class():
    a, b = FakeDevice("a"), FakeDevice("b", fingerprint="0" * 16)
    model, shape = build_model("demo_cnn")
    space = build_layer_space(model, shape)
    with LatencyTable(":memory:") as table:
        with pytest.raises(FleetMismatch, match="one hardware class"):
            calibrate([a, b], "demo_cnn", model, space, table, points=1, network_variants=0)
        with pytest.raises(FleetMismatch, match="onnxruntime 2.0"):
            calibrate([a, FakeDevice("c", version="2.0")], "demo_cnn", model, space, table, points=1,
                      network_variants=0)
        with pytest.raises(MeasurementRejected, match="no litert installed"):
            calibrate([a], "demo_cnn", model, space, table, runtime="litert", points=1, network_variants=0)
        with pytest.raises(ValueError, match="listed twice"):
            calibrate([a, a], "demo_cnn", model, space, table, points=1, network_variants=0)


def test_device_check_warns_about_what_spoils_measurements():
    from edgeprune.measure.registry import measurement_warnings

    info = {"cpufreq": [{"cpu": 0, "governor": "performance", "cur_mhz": 1200.0, "max_mhz": 2400.0}],
            "available_sensors": ["rpi_pmic", "estimate"],
            "energy_sensor": {"name": "rpi_pmic", "kind": "measured", "under_reads_wall_power": True},
            "conditions": {"throttled": False, "temperature_c": 78.0, "thermal_throttle_count": 0,
                           "throttle_flags": {"under_voltage": False, "under_voltage_occurred": True},
                           "devfreq": {"17000000.gpu": {"governor": "nvhost_podgov"}}}}
    text = " | ".join(measurement_warnings(info))
    assert "below 90% of their max clock" in text and "nvhost_podgov" not in text
    assert "17000000.gpu" in text and "jetson_clocks" in text
    assert "under_voltage_occurred" in text and "78 C" in text and "under-reads wall power" in text
    assert "estimates" not in text
    jetson = {"cpufreq": [{"cpu": 0, "governor": "schedutil"}], "available_sensors": ["ina3221", "estimate"],
              "energy_sensor": {"kind": "measured", "board_power_from": "sum of rails (no VDD_IN)"},
              "conditions": {"throttled": True, "throttle_flags": {"throttled": True}}}
    text = " | ".join(measurement_warnings(jetson))
    assert "schedutil" in text and "(throttled)" in text and "sum of the monitored rails" in text
