"""Energy sensor interface, the reading it returns, and the power-source interface of sampled sensors."""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Dict

KINDS = ("measured", "estimate")


@dataclass(frozen=True)
class EnergyReading:
    """Energy used during one start()/stop() window."""

    joules: float
    source: str
    kind: str
    method: str
    params: Dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")


class EnergySensor(ABC):
    """A sensor measures (or estimates) energy between start() and stop()."""

    name: str = "sensor"
    kind: str = "measured"
    # Time over which the sensor's value is refreshed; measurement windows last >= 10x this.
    refresh_s: float = 0.001

    @abstractmethod
    def start(self) -> None:
        """Begin an energy window."""

    @abstractmethod
    def stop(self) -> EnergyReading:
        """End the window and return the energy used in it."""

    def close(self) -> None:
        """Release resources; the default has none."""


@dataclass(frozen=True)
class PowerReading:
    """One instantaneous power sample: the board (or best available) total and its rails."""

    watts: float
    rails_w: Dict[str, float] = field(default_factory=dict)
    extra: Dict[str, Any] = field(default_factory=dict)


class PowerSource(ABC):
    """Something that reports instantaneous power; SampledSensor integrates it over time."""

    name: str = "power"
    refresh_s: float = 0.1

    @abstractmethod
    def read(self) -> PowerReading:
        """Take one power sample (raises SensorUnavailable when the device stops answering)."""

    def describe(self) -> Dict[str, Any]:
        """Static facts recorded with every reading (scope, which rail is the total, units)."""
        return {}

    def begin_window(self) -> None:
        """Called when an energy window starts; the default does nothing."""

    def end_window(self) -> Dict[str, Any]:
        """Window-level facts (e.g. cross-checks) merged into the reading's params."""
        return {}

    def close(self) -> None:
        """Release resources; the default has none."""
