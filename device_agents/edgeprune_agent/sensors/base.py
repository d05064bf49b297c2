"""Energy sensor interface and the reading it returns."""
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

    @abstractmethod
    def start(self) -> None:
        """Begin an energy window."""

    @abstractmethod
    def stop(self) -> EnergyReading:
        """End the window and return the energy used in it."""

    def close(self) -> None:
        """Release resources; the default has none."""
