"""Wall time of a compress run's phases: measured as they run, and estimated before the long ones."""
from __future__ import annotations

import time
from contextlib import contextmanager

from edgeprune.train.estimate import seconds_per_step


@contextmanager
def timed(timings: dict, phase: str):
    """Add the wall time of the block to ``timings[phase]`` (seconds)."""
    tick = time.perf_counter()
    try:
        yield
    finally:
        timings[phase] = round(timings.get(phase, 0.0) + time.perf_counter() - tick, 2)


def estimate_phases(epochs: int, pruning: tuple[str, float] | None, net, data, teacher, share: float) -> dict:
    """Expected seconds of the long phases, from timed training steps of the dense model on this machine;
    ``pruning``: (name, dense-model training steps) of the method's own training phase, if it has one."""
    loss_fn = getattr(data, "loss_fn", None)
    step = seconds_per_step(net, data.train, loss_fn=loss_fn)
    tune_step = share * step + (seconds_per_step(net, data.train, teacher) - step if teacher is not None else 0.0)
    est = {"seconds_per_dense_step": round(step, 4), "fine_tuning": epochs * len(data.train) * tune_step}
    if pruning is not None:
        est[pruning[0]] = pruning[1] * step
    return {k: round(v, 1) if k != "seconds_per_dense_step" else v for k, v in est.items()}


def say_estimates(say, est: dict) -> None:
    """One line: each long phase's expected duration."""
    phases = ", ".join(f"{k.replace('_', '-')} ≈ {duration(v)}" for k, v in est.items() if k != "seconds_per_dense_step")
    say(f"estimated time: {phases} (from timed training steps of the dense model on this machine)")


def duration(seconds: float) -> str:
    """Seconds as '42 s' or '3.5 min'."""
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"
