"""A model's cost as a fraction of the dense model's, measured beside it, with more pairs on a busy device."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from edgeprune.measurement import Measurement

# Here, beside a training core, ResNet-20 ran 2x slower while the fixed reference workload did not slow at all, so
# the drift correction cannot remove that load; a ratio to the dense model measured alongside does (both slow alike).
# One 0.3 s pair then still varies 9-19 % (CV), the median of five 4-6 %. Five are taken when the first dense
# measurement strays from its expected cost by more than BUSY (the device is loaded differently than at calibration).
BUSY = 0.15
BUSY_PAIRS = 5


@dataclass(frozen=True)
class Paired:
    """The median ratio of a model's cost to the dense model's, measured alternately, and what was measured."""

    ratio: float
    model: Measurement  # the model's measurement in the median pair
    dense: Measurement
    pairs: int
    busy: bool  # the first dense measurement strayed from its expected cost by more than BUSY


def measure_beside_dense(measure_model: Callable[[], Measurement], measure_dense: Callable[[], Measurement],
                         metric: str, reference_scale_ms: float | None, expected_dense: float,
                         pairs: int = 1, busy: float = BUSY, busy_pairs: int = BUSY_PAIRS) -> Paired:
    """``pairs`` (model, dense) pairs, or ``busy_pairs`` when the first dense measurement (drift-corrected where
    possible) is more than ``busy`` away from ``expected_dense``; the pair with the median model ÷ dense ratio."""
    def pair() -> tuple[float, Measurement, Measurement]:
        m, d = measure_model(), measure_dense()
        return m.value(metric) / d.value(metric), m, d

    taken = [pair()]
    strays = abs(taken[0][2].comparable(metric, reference_scale_ms) / expected_dense - 1) > busy
    taken += [pair() for _ in range(max(pairs, busy_pairs if strays else 1) - 1)]
    ratio, model, dense = sorted(taken, key=lambda t: t[0])[len(taken) // 2]
    return Paired(ratio, model, dense, len(taken), strays)

