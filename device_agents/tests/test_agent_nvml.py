"""NVML total-energy counter with an injected fake pynvml (no GPU here)."""
import pytest

from edgeprune_agent import SensorUnavailable
from edgeprune_agent.sensors.nvml import NvmlSensor


class FakeNvml:
    """The subset of pynvml the sensor uses; counters in mJ advance on every read."""

    class NVMLError(Exception):
        pass

    def __init__(self, gpus=2, step_mj=(1500, 250), init_fails=False, no_energy=False):
        self.counters = [10_000_000, 20_000_000][:gpus]
        self.step, self.init_fails, self.no_energy, self.shut = step_mj, init_fails, no_energy, False

    def nvmlInit(self):
        if self.init_fails:
            raise self.NVMLError("Driver Not Loaded")

    def nvmlDeviceGetCount(self):
        return len(self.counters)

    def nvmlDeviceGetHandleByIndex(self, i):
        return i

    def nvmlDeviceGetName(self, h):
        return f"Fake GPU {h}"

    def nvmlDeviceGetTotalEnergyConsumption(self, h):
        if self.no_energy:
            raise self.NVMLError("Not Supported")
        self.counters[h] += self.step[h]
        return self.counters[h]

    def nvmlShutdown(self):
        self.shut = True


def test_counter_delta_summed_over_gpus():
    nvml = FakeNvml()
    sensor = NvmlSensor(nvml=nvml)
    sensor.start()
    reading = sensor.stop()
    assert reading.joules == pytest.approx((1500 + 250) / 1000)
    assert (reading.kind, reading.source) == ("measured", "nvml")
    assert reading.params["names"] == ["Fake GPU 0", "Fake GPU 1"] and "GPU board" in reading.params["scope"]
    sensor.close()
    assert nvml.shut


def test_one_gpu_selected():
    sensor = NvmlSensor(gpus=[1], nvml=FakeNvml())
    sensor.start()
    assert sensor.stop().joules == pytest.approx(0.25)


def test_unavailable_cases():
    with pytest.raises(SensorUnavailable, match="NVML init failed"):
        NvmlSensor(nvml=FakeNvml(init_fails=True))
    with pytest.raises(SensorUnavailable, match="Volta or newer"):
        NvmlSensor(nvml=FakeNvml(no_energy=True))
    with pytest.raises(SensorUnavailable, match="no GPUs"):
        NvmlSensor(nvml=FakeNvml(gpus=0))
