"""Timing loop and latency statistics on synthetic data."""
import math

import pytest

from edgeprune_agent.timing import latency_stats, measure_latency, run_cv, timed_runs, warm_up


class FakeClock:
    """A nanosecond clock that only moves when a fake inference runs."""

    def __init__(self, step_ms: float):
        self.now = 0
        self.step_ns = int(step_ms * 1e6)
        self.runs = 0

    def __call__(self) -> int:
        return self.now

    def run(self) -> None:
        self.now += self.step_ns
        self.runs += 1


def test_stats_exact_values_on_one_to_ten():
    stats = latency_stats([float(v) for v in range(1, 11)])
    assert stats["median"] == 5.5
    assert stats["mean"] == 5.5
    assert stats["p10"] == pytest.approx(1.9)
    assert stats["p90"] == pytest.approx(9.1)
    assert stats["std"] == pytest.approx(math.sqrt(55 / 6))
    assert stats["min"] == 1.0
    assert stats["n"] == 10
    assert stats["cv"] == pytest.approx(math.sqrt(55 / 6) / 5.5)
    # blocks [1,2] [3,4] [5,6] [7,8] [9,10] -> medians 1.5..9.5, sample std sqrt(10), mean 5.5
    assert stats["run_cv"] == pytest.approx(math.sqrt(10) / 5.5)


def test_constant_samples_have_zero_spread():
    stats = latency_stats([2.0] * 12)
    assert (stats["std"], stats["cv"], stats["run_cv"], stats["p10"], stats["p90"]) == (0.0, 0.0, 0.0, 2.0, 2.0)


def test_run_cv_sees_drift_that_cv_alone_mixes_in():
    drifting = [1.0] * 10 + [2.0] * 10 + [3.0] * 10 + [4.0] * 10 + [5.0] * 10
    assert run_cv(drifting) == pytest.approx(math.sqrt(2.5) / 3.0)
    assert run_cv([1.0, 2.0, 3.0, 4.0]) is None


def test_single_sample_and_empty():
    stats = latency_stats([3.0])
    assert (stats["std"], stats["cv"], stats["run_cv"], stats["n"]) == (0.0, 0.0, None, 1)
    with pytest.raises(ValueError):
        latency_stats([])


def test_timed_runs_waits_for_min_duration():
    clock = FakeClock(10.0)
    samples = timed_runs(clock.run, min_repeats=3, min_duration_s=0.1, max_duration_s=60, clock=clock)
    assert samples == [10.0] * 10


def test_timed_runs_waits_for_min_repeats():
    clock = FakeClock(10.0)
    samples = timed_runs(clock.run, min_repeats=20, min_duration_s=0.05, max_duration_s=60, clock=clock)
    assert len(samples) == 20


def test_timed_runs_stops_at_max_duration():
    clock = FakeClock(10.0)
    samples = timed_runs(clock.run, min_repeats=1000, min_duration_s=0.01, max_duration_s=0.05, clock=clock)
    assert len(samples) == 5


def test_warm_up_runs_are_not_timed_and_are_capped():
    clock = FakeClock(10.0)
    assert warm_up(clock.run, 7, max_duration_s=60, clock=clock) == 7
    assert warm_up(clock.run, 100, max_duration_s=0.03, clock=clock) == 3
    clock = FakeClock(1.0)
    samples = measure_latency(clock.run, warmup=4, min_repeats=5, min_duration_s=0.001, clock=clock)
    assert clock.runs == 9 and len(samples) == 5


def test_real_clock_measures_sleep():
    import time
    samples = measure_latency(lambda: time.sleep(0.002), warmup=1, min_repeats=5, min_duration_s=0.01)
    assert len(samples) >= 5
    assert min(samples) >= 2.0


def test_reference_blocks_alternate_and_meet_minimums():
    from edgeprune_agent.timing import timed_runs_with_reference

    order = []
    clock = iter(range(0, 10**12, 1_000_000))  # every clock read advances 1 ms
    samples, ref = timed_runs_with_reference(lambda: order.append("m"), lambda: order.append("r"), min_repeats=50,
                                             min_duration_s=0.1, max_duration_s=10, block_s=0.01,
                                             clock=lambda: next(clock))
    assert len(samples) >= 50 and sum(samples) >= 100 and ref
    runs = "".join(order)
    assert runs.startswith("m") and "mr" in runs and "rm" in runs  # alternating blocks, model first
    assert runs.count("rm") >= 3
