"""End to end over HTTP: agents on fake Jetson/Pi trees whose sensor values follow the agent's CPU load."""
import os
import threading
from pathlib import Path

import psutil
import pytest

from agent_fixtures import conv_model  # noqa: F401 (fixture)
from agent_testlib import FIXTURES, LiveServer, write_file, write_sysfs
from edgeprune_agent.energy import EnergyProtocol
from edgeprune_agent.runner import JOB_PROCESS_NAME

HWMON = "sys/bus/i2c/drivers/ina3221/1-0040/hwmon/hwmon1"
# The fake sensors follow the job process by polling, ~20-40 ms late (more on a busy machine); windows long
# against that lag keep the leak of load samples into idle windows (and back) to a few per cent.
PROTOCOL = EnergyProtocol(windows=3, min_window_s=0.5, idle_s=1.0)
MEASURE = {"warmup": 1, "min_repeats": 5, "min_duration_s": 0.05}


def _replace(path: Path, text: str) -> None:
    """Atomic rewrite so a reader never sees half a value."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


class LoadFollower(threading.Thread):
    """Writes 'load' values while a job process runs (state R), 'idle' values while it sleeps (idle windows)."""

    HOLD_TICKS = 3  # a running thread waits on the GIL in the kernel now and then; a 6 ms blip is not idle

    def __init__(self, write, period_s: float = 0.002):
        super().__init__(daemon=True)
        self.write, self.period_s = write, period_s
        self.stop_event, self.switches = threading.Event(), 0
        self._job, self._quiet = None, self.HOLD_TICKS

    def _model_running(self) -> bool:
        """True when this test's job process (named by the agent) is running rather than sleeping."""
        try:
            if self._job is None or not self._job.is_running():
                self._job = next((p for p in psutil.Process().children(recursive=True)
                                  if p.name() == JOB_PROCESS_NAME), None)
            running = self._job is not None and self._job.status() == psutil.STATUS_RUNNING
        except psutil.Error:  # the job ended between the listing and the look
            self._job, running = None, False
        self._quiet = 0 if running else self._quiet + 1
        return self._quiet < self.HOLD_TICKS

    def run(self) -> None:
        loaded = False
        while not self.stop_event.wait(self.period_s):
            busy = self._model_running()
            if busy != loaded:
                self.write(busy)
                loaded, self.switches = busy, self.switches + 1

    def __enter__(self):
        self.write(False)
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop_event.set()
        self.join(2)


def _measure(server: LiveServer, model: bytes) -> dict:
    with server.client() as http:
        resp = http.post("/v1/measure", params=MEASURE, content=model)
    assert resp.status_code == 200, resp.text
    return resp.json()


def _check_energy(energy: dict, idle_w: float, load_w: float) -> None:
    """Idle, load, total and marginal per inference agree with the written power levels."""
    assert energy["kind"] == "measured" and len(energy["windows"]) == 3
    assert energy["idle_power_w"] == pytest.approx(idle_w, rel=0.1)
    assert energy["load_power_w"] == pytest.approx(load_w, rel=0.1)
    per_inference_s = sorted(w["duration_s"] / w["inferences"] for w in energy["windows"])[1]
    assert energy["total_per_inference"] == pytest.approx(load_w * per_inference_s * 1000, rel=0.15)
    assert energy["marginal_per_inference"] == pytest.approx((load_w - idle_w) * per_inference_s * 1000,
                                                             rel=0.3)


def test_jetson_hwmon_agent_integrates_changing_rails(tmp_path, conv_model):
    write_sysfs(tmp_path, "jetson_jp6_orin_nano_ina3221_hwmon.txt")
    current = tmp_path / HWMON / "curr1_input"  # VDD_IN at 5016 mV: 888 mA idle, 1576 mA under load
    with LoadFollower(lambda busy: _replace(current, "1576\n" if busy else "888\n")) as writer, \
            LiveServer(sensor_name="ina3221", sysfs_root=str(tmp_path), energy_protocol=PROTOCOL,
                       sensor_options={"ina3221": {"refresh_s": 0.01}}) as server:
        with server.client() as http:
            info = http.get("/v1/info").json()
        result = _measure(server, conv_model)
    assert info["available_sensors"][0] == "ina3221"
    assert info["energy_sensor"]["board_power_from"].startswith("input rail VDD_IN")
    energy = result["energy_mj"]
    _check_energy(energy, idle_w=5.016 * 0.888, load_w=5.016 * 1.576)
    assert energy["source"] == "ina3221" and writer.switches >= 4  # load, idle before, load windows, idle after
    assert "VDD_SOC" in energy["params"]["last_rails_w"]


def test_pi5_agent_with_fake_vcgencmd(tmp_path, conv_model):
    bin_dir, root = tmp_path / "bin", tmp_path / "root"
    root.mkdir()
    pmic = (FIXTURES / "rpi5_pmic_read_adc.txt").read_text()
    idle_text = pmic.replace("current(7)=2.12413000A", "current(7)=0.50000000A")
    write_file(bin_dir, "pmic.txt", idle_text)
    write_file(bin_dir, "vcgencmd", "#!/bin/sh\n"
               f'case "$1" in pmic_read_adc) cat "{bin_dir}/pmic.txt";; get_throttled) echo throttled=0x20000;; '
               "*) exit 1;; esac\n").chmod(0o755)
    delta_w = (2.12413 - 0.5) * 0.8606585
    with LoadFollower(lambda busy: _replace(bin_dir / "pmic.txt", pmic if busy else idle_text)), \
            LiveServer(sensor_name="auto", sysfs_root=str(root), bin_dir=str(bin_dir), energy_protocol=PROTOCOL,
                       sensor_options={"rpi_pmic": {"refresh_s": 0.02}}) as server:
        result = _measure(server, conv_model)
    energy = result["energy_mj"]
    assert energy["source"] == "rpi_pmic" and energy["params"]["under_reads_wall_power"] is True
    assert energy["load_power_w"] - energy["idle_power_w"] == pytest.approx(delta_w, rel=0.2)
    per_inference_s = sorted(w["duration_s"] / w["inferences"] for w in energy["windows"])[1]
    assert energy["marginal_per_inference"] == pytest.approx(delta_w * per_inference_s * 1000, rel=0.3)
    for key in ("conditions_before", "conditions_after"):
        flags = result[key]["throttle_flags"]  # 0x20000: capped since boot, not now
        assert flags["source"] == "vcgencmd get_throttled" and flags["arm_freq_capped_occurred"]
        assert result[key]["throttled"] is False


def test_tegrastats_stream_agent(tmp_path, conv_model):
    lines = [line for line in (FIXTURES / "tegrastats_samples.txt").read_text().splitlines()
             if line.startswith("03-11-2025")]
    idle_line, load_line = lines  # JP6 Orin Nano: VDD_IN 4454 mW idle, 7912 mW under load
    bin_dir = tmp_path / "bin"
    write_file(bin_dir, "line.txt", idle_line + "\n")
    write_file(bin_dir, "tegrastats", f'#!/bin/sh\nwhile true; do cat "{bin_dir}/line.txt"; sleep 0.01; done\n'
               ).chmod(0o755)
    with LoadFollower(lambda busy: _replace(bin_dir / "line.txt", (load_line if busy else idle_line) + "\n")), \
            LiveServer(sensor_name="tegrastats", sysfs_root=str(tmp_path / "root"), bin_dir=str(bin_dir),
                       energy_protocol=PROTOCOL, sensor_options={"tegrastats": {"interval_ms": 20}}) as server:
        result = _measure(server, conv_model)
    energy = result["energy_mj"]
    assert energy["source"] == "tegrastats" and energy["params"]["last"]["board_power_from"] == "input rail VDD_IN"
    _check_energy(energy, idle_w=4.454, load_w=7.912)
