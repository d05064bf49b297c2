"""Latency timing loop and summary statistics (pure functions)."""
from __future__ import annotations

import time
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

RUN_CV_BLOCKS = 5

Clock = Callable[[], int]


def warm_up(run_fn: Callable[[], object], warmup: int, max_duration_s: float,
            clock: Clock = time.perf_counter_ns) -> int:
    """Run `run_fn` untimed up to `warmup` times, giving up after `max_duration_s`; return runs done."""
    deadline = clock() + int(max_duration_s * 1e9)
    done = 0
    while done < warmup:
        run_fn()
        done += 1
        if clock() >= deadline:
            break
    return done


def timed_runs(run_fn: Callable[[], object], min_repeats: int, min_duration_s: float,
               max_duration_s: float, clock: Clock = time.perf_counter_ns) -> List[float]:
    """Time `run_fn` until both `min_repeats` and `min_duration_s` are met (or `max_duration_s` passes); ms samples."""
    min_ns = int(min_duration_s * 1e9)
    max_ns = int(max_duration_s * 1e9)
    samples: List[float] = []
    loop_start = clock()
    while True:
        t0 = clock()
        run_fn()
        t1 = clock()
        samples.append((t1 - t0) / 1e6)
        elapsed = t1 - loop_start
        if elapsed >= max_ns:
            break
        if len(samples) >= min_repeats and elapsed >= min_ns:
            break
    return samples


def timed_runs_with_reference(run_fn: Callable[[], object], ref_fn: Callable[[], object], min_repeats: int,
                              min_duration_s: float, max_duration_s: float, block_s: float = 0.02,
                              clock: Clock = time.perf_counter_ns) -> tuple:
    """Alternate blocks of the model (``block_s``) and of the reference (half as long); ms samples of each.

    Blocks keep caches warm for each model while the alternation tracks machine-wide speed drift.
    """
    samples: List[float] = []
    ref: List[float] = []
    model_ns = 0
    loop_start = clock()
    while True:
        block_end = clock() + int(block_s * 1e9)
        while True:
            t0 = clock()
            run_fn()
            t1 = clock()
            samples.append((t1 - t0) / 1e6)
            model_ns += t1 - t0
            if t1 >= block_end:
                break
        ref_end = clock() + int(block_s * 5e8)
        while True:
            t0 = clock()
            ref_fn()
            t1 = clock()
            ref.append((t1 - t0) / 1e6)
            if t1 >= ref_end:
                break
        if clock() - loop_start >= max_duration_s * 1e9:
            break
        if len(samples) >= min_repeats and model_ns >= min_duration_s * 1e9:
            break
    return samples, ref


def measure_latency(run_fn: Callable[[], object], warmup: int = 10, min_repeats: int = 30,
                    min_duration_s: float = 0.5, max_duration_s: float = 60.0,
                    clock: Clock = time.perf_counter_ns) -> List[float]:
    """Warm up, then return per-run latencies in milliseconds."""
    warm_up(run_fn, warmup, max_duration_s, clock)
    return timed_runs(run_fn, min_repeats, min_duration_s, max_duration_s, clock)


def _cv(values: np.ndarray) -> Optional[float]:
    """Coefficient of variation (sample std / mean), None when undefined."""
    if values.size < 2:
        return None if values.size == 0 else 0.0
    mean = float(values.mean())
    if mean == 0.0:
        return None
    return float(values.std(ddof=1)) / mean


def run_cv(samples: Sequence[float], blocks: int = RUN_CV_BLOCKS) -> Optional[float]:
    """CV of the medians of `blocks` consecutive sample blocks; None with fewer samples than blocks."""
    if len(samples) < blocks:
        return None
    parts = np.array_split(np.asarray(samples, dtype=float), blocks)
    return _cv(np.array([float(np.median(p)) for p in parts]))


def latency_stats(samples: Sequence[float]) -> Dict[str, Optional[float]]:
    """Summary of latency samples (ms): median, mean, p10, p90, sample std, min, n, cv, run_cv."""
    if len(samples) == 0:
        raise ValueError("latency_stats needs at least one sample")
    arr = np.asarray(samples, dtype=float)
    std = float(arr.std(ddof=1)) if arr.size > 1 else 0.0
    return {
        "median": float(np.median(arr)),
        "mean": float(arr.mean()),
        "p10": float(np.percentile(arr, 10)),
        "p90": float(np.percentile(arr, 90)),
        "std": std,
        "min": float(arr.min()),
        "n": int(arr.size),
        "cv": _cv(arr),
        "run_cv": run_cv(samples),
    }
