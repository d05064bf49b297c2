"""A relative budget is judged on the ratio to dense measured alongside, with more pairs on a busy device."""
import pytest

from edgeprune.measure.steady import BUSY_PAIRS, measure_beside_dense
from edgeprune.measurement import Measurement


def _m(ms: float) -> Measurement:
    return Measurement.from_result({"latency_ms": {"median": ms}, "runtime": {"name": "onnxruntime"}})


def _sequence(values):
    it = iter(values)
    return lambda: _m(next(it))


def test_a_quiet_device_takes_the_pairs_asked_for():
    p = measure_beside_dense(_sequence([0.5]), _sequence([1.02]), "latency", None, expected_dense=1.0)
    assert p.pairs == 1 and not p.busy and p.ratio == pytest.approx(0.5 / 1.02)
    assert p.model.latency.median == 0.5 and p.dense.latency.median == 1.02
    p = measure_beside_dense(_sequence([0.5, 0.7, 0.52]), _sequence([1.0, 1.0, 1.04]), "latency", None,
                             expected_dense=1.0, pairs=3)
    assert p.pairs == 3 and not p.busy and p.ratio == pytest.approx(0.5)


def test_a_busy_device_takes_the_median_of_several_pairs():
    # dense measures 2x its calibrated cost: load. One pair is an outlier (a burst during the model's run).
    model = [1.0, 0.9, 1.6, 1.0, 1.1]
    dense = [2.0, 2.0, 2.0, 2.1, 2.0]
    p = measure_beside_dense(_sequence(model), _sequence(dense), "latency", None, expected_dense=1.0)
    assert p.busy and p.pairs == BUSY_PAIRS
    assert p.ratio == pytest.approx(0.5)  # the median pair, not the 0.8 burst
    assert p.model.latency.median / p.dense.latency.median == pytest.approx(p.ratio)


def test_a_device_faster_than_calibrated_also_counts_as_off():
    p = measure_beside_dense(_sequence([0.3] * BUSY_PAIRS), _sequence([0.6] * BUSY_PAIRS), "latency", None,
                             expected_dense=1.0)
    assert p.busy and p.pairs == BUSY_PAIRS and p.ratio == pytest.approx(0.5)
