"""NVIDIA GPU energy from NVML's cumulative total-energy counter (nvidia-ml-py; Volta or newer)."""
from __future__ import annotations

import importlib
from typing import Any, List, Optional

from ..errors import SensorUnavailable
from .base import EnergyReading, EnergySensor


def _load_nvml(module: Optional[Any]) -> Any:
    """The pynvml module (injected in tests), initialised."""
    if module is None:
        try:
            module = importlib.import_module("pynvml")
        except ImportError as exc:
            raise SensorUnavailable("nvidia-ml-py is not installed: pip install 'edgeprune-agent[nvml]'") from exc
    try:
        module.nvmlInit()
    except module.NVMLError as exc:
        raise SensorUnavailable(f"NVML init failed (no NVIDIA driver/GPU?): {exc}") from exc
    return module


class NvmlSensor(EnergySensor):
    """Sums nvmlDeviceGetTotalEnergyConsumption (mJ since driver load) deltas over the chosen GPUs."""

    name = "nvml"
    kind = "measured"
    refresh_s = 0.1  # the counter advances in the driver's power-sampling steps

    def __init__(self, gpus: Optional[List[int]] = None, nvml: Optional[Any] = None):
        self._nvml = _load_nvml(nvml)
        try:
            count = self._nvml.nvmlDeviceGetCount()
            self.gpus = list(range(count)) if gpus is None else list(gpus)
            self._handles = [self._nvml.nvmlDeviceGetHandleByIndex(i) for i in self.gpus]
            self.names = [str(self._nvml.nvmlDeviceGetName(h)) for h in self._handles]
            self._read()
        except self._nvml.NVMLError as exc:
            raise SensorUnavailable(f"NVML total energy unavailable (needs Volta or newer): {exc}") from exc
        if not self._handles:
            raise SensorUnavailable("NVML reports no GPUs")
        self._start: Optional[List[int]] = None

    def _read(self) -> List[int]:
        """Counter of every chosen GPU in millijoules."""
        return [int(self._nvml.nvmlDeviceGetTotalEnergyConsumption(h)) for h in self._handles]

    def start(self) -> None:
        """Record the counters."""
        self._start = self._read()

    def stop(self) -> EnergyReading:
        """Energy since start() summed over GPUs."""
        if self._start is None:
            raise RuntimeError("NvmlSensor.stop() called before start()")
        try:
            end = self._read()
        except self._nvml.NVMLError as exc:
            raise SensorUnavailable(f"NVML read failed: {exc}") from exc
        millijoules = sum(e - s for s, e in zip(self._start, end))
        self._start = None
        return EnergyReading(joules=millijoules / 1000.0, source="nvml", kind="measured",
                             method="nvmlDeviceGetTotalEnergyConsumption delta",
                             params={"gpus": self.gpus, "names": self.names,
                                     "scope": "GPU board(s) only; excludes CPU, host memory and PSU"})

    def close(self) -> None:
        """Shut NVML down."""
        try:
            self._nvml.nvmlShutdown()
        except self._nvml.NVMLError:
            pass
