"""How one measurement is taken: threads, warm-up and how long to repeat."""
from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class MeasureSettings:
    """Measurement protocol; part of every table row's identity."""

    threads: int = 1
    warmup: int = 10
    min_repeats: int = 30
    min_duration_s: float = 0.3
    max_duration_s: float = 60.0
    reference: bool = True  # time a fixed reference workload in alternating blocks (drift correction)

    def __post_init__(self):
        if self.threads < 1 or self.warmup < 0 or self.min_repeats < 1:
            raise ValueError(f"invalid measurement settings {self}: need threads>=1, warmup>=0, min_repeats>=1")
        if not 0 < self.min_duration_s <= self.max_duration_s:
            raise ValueError(f"invalid measurement settings {self}: need 0 < min_duration_s <= max_duration_s")

    def as_kwargs(self) -> dict:
        return asdict(self)
