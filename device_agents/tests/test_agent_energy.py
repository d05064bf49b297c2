"""Sampled-power integration and the energy protocol (idle before/after, windows >= 10x refresh, median)."""
import statistics
import threading
import time

import pytest

from agent_fixtures import conv_model  # noqa: F401 (fixture)
from edgeprune_agent import measure_model
from edgeprune_agent.energy import EnergyProtocol, measure_energy
from edgeprune_agent.sensors.base import PowerReading, PowerSource
from edgeprune_agent.sensors.sampling import SampledSensor, integrate

FAST = {"warmup": 1, "min_repeats": 5, "min_duration_s": 0.02}


class RampSource(PowerSource):
    """P(t) = 2 W + 10 W/s x t, a known function of the clock."""

    name, refresh_s = "ramp", 0.002

    def __init__(self, reads_wanted: int = 60):
        self.t0 = time.monotonic()
        self.reads = 0
        self.reads_wanted = reads_wanted
        self.enough = threading.Event()

    def read(self):
        self.reads += 1
        if self.reads >= self.reads_wanted:
            self.enough.set()
        return PowerReading(2.0 + 10.0 * (time.monotonic() - self.t0))


class FlagSource(PowerSource):
    """3 W in the idle windows, 5 W in the load windows (the protocol's order: idle, loads, idle); counts the
    model's runs per window, so the test also sees that the model ran in the load windows only."""

    name, refresh_s = "flag", 0.005

    def __init__(self, loads: int):
        self.loads, self.runs = loads, []

    def begin_window(self):
        self.runs.append(0)

    def read(self):
        loaded = 1 <= len(self.runs) - 1 <= self.loads
        return PowerReading(5.0 if loaded else 3.0, rails_w={"VDD_IN": 1.0})

    def describe(self):
        return {"board_power_from": "test"}


class ConstantSource(PowerSource):
    """Always 4 W."""

    name, refresh_s = "constant", 0.005

    def read(self):
        return PowerReading(4.0)


def test_trapezoid():
    assert integrate([(0.0, 1.0), (1.0, 3.0), (3.0, 3.0)]) == pytest.approx(2.0 + 6.0)
    assert integrate([(0.0, 5.0)]) == 0.0


def test_sampled_sensor_integrates_a_ramp():
    source = RampSource()
    sensor = SampledSensor(source, interval_s=0.002)
    before = time.monotonic()
    sensor.start()
    assert source.enough.wait(30), "the sampler stopped reading"
    reading = sensor.stop()
    after = time.monotonic()
    t = reading.params["duration_s"]
    assert 0 < t <= after - before and reading.params["mean_power_w"] > 2.0
    t_start = sensor._samples[0][0] - source.t0
    expected = 2.0 * t + 5.0 * ((t_start + t) ** 2 - t_start ** 2)
    assert reading.joules == pytest.approx(expected, rel=0.02)
    assert reading.params["samples"] > 50 and reading.kind == "measured"


def test_protocol_separates_marginal_from_total():
    source = FlagSource(loads=3)
    sensor = SampledSensor(source, interval_s=0.001)

    def run():
        source.runs[-1] += 1
        end = time.perf_counter() + 0.002
        while time.perf_counter() < end:
            pass

    protocol = EnergyProtocol(windows=3, min_window_s=0.1)
    energy = measure_energy(run, sensor, protocol, lambda: {"governor": "performance", "cpu_freq_mhz": 1800.0})
    assert protocol.window_s(sensor) == pytest.approx(0.1)
    assert len(energy["windows"]) == 3 and all(w["duration_s"] >= 0.1 for w in energy["windows"])
    assert len(source.runs) == 5 and source.runs[0] == source.runs[-1] == 0 and min(source.runs[1:-1]) > 0
    assert energy["idle_power_w"] == pytest.approx(3.0, rel=0.02)
    assert energy["load_power_w"] == pytest.approx(5.0, rel=0.05)
    per_inference_s = statistics.median([w["duration_s"] / w["inferences"] for w in energy["windows"]])
    assert energy["total_per_inference"] == pytest.approx(5.0 * per_inference_s * 1000, rel=0.1)
    assert energy["marginal_per_inference"] == pytest.approx(2.0 * per_inference_s * 1000, rel=0.15)
    assert energy["per_inference"] == energy["total_per_inference"]
    assert energy["idle_clocks"]["note"] is None and "10x sensor refresh" in energy["method"]
    assert energy["params"]["board_power_from"] == "test" and energy["params"]["last_rails_w"] == {"VDD_IN": 1.0}


def test_window_is_ten_refreshes_and_scaling_governor_is_flagged():
    slow = SampledSensor(ConstantSource())
    slow.refresh_s = 0.03
    assert EnergyProtocol(min_window_s=0.1).window_s(slow) == pytest.approx(0.3)
    energy = measure_energy(lambda: time.sleep(0.001), SampledSensor(ConstantSource()),
                            EnergyProtocol(windows=1, min_window_s=0.06, idle_s=0.05),
                            lambda: {"governor": "ondemand", "cpu_freq_mhz": 600.0})
    assert "governor ondemand" in energy["idle_clocks"]["note"]
    assert energy["protocol"] == {"windows": 1, "min_window_s": 0.06, "idle_s": 0.05}
    with pytest.raises(ValueError):
        EnergyProtocol(windows=0)


def test_measure_model_with_a_sampled_sensor(conv_model):
    sensor = SampledSensor(ConstantSource(), interval_s=0.002)
    result = measure_model(conv_model, sensor=sensor, energy_protocol=EnergyProtocol(2, 0.1, 0.05), **FAST)
    energy = result["energy_mj"]
    assert (energy["kind"], energy["source"]) == ("measured", "constant")
    assert energy["idle_power_w"] == pytest.approx(4.0) and energy["load_power_w"] == pytest.approx(4.0)
    per_inference_s = energy["windows"][0]["duration_s"] / energy["windows"][0]["inferences"]
    assert energy["windows"][0]["total_mj"] == pytest.approx(4.0 * per_inference_s * 1000, rel=1e-6)
    assert abs(energy["marginal_per_inference"]) < 0.05 * energy["total_per_inference"]
    assert result["latency_ms"]["n"] >= 5 and "cpufreq" in result["conditions_after"]
