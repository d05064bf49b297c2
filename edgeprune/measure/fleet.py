"""Spread measurement jobs over several devices of one hardware class; a device that dies hands its job on."""
from __future__ import annotations

import queue
import threading
from dataclasses import dataclass, field
from typing import Callable, Iterable

from edgeprune.errors import EdgepruneError
from edgeprune.measure.devices import DeviceUnavailable, MeasurementRejected
from edgeprune.measure.settings import MeasureSettings

WIND_DOWN_S = 10.0  # how long the workers get to finish (and free their runtime sessions) once the work is done


class FleetMismatch(EdgepruneError):
    """The devices of a fleet are not the same hardware class or runtime version."""


@dataclass
class Job:
    """One point to measure: `build` makes the model bytes (main thread), `store` keeps the result."""

    phase: str
    key: str
    build: Callable[[], bytes]
    store: Callable[[str, dict], bool]  # (device name, result) -> stored (False: already there)
    data: bytes | None = None
    attempts: list[str] = field(default_factory=list)


@dataclass
class FleetStats:
    """Who measured what, and which devices were lost."""

    measured_by: dict[str, int] = field(default_factory=dict)
    lost: dict[str, str] = field(default_factory=dict)
    requeued: int = 0


def check_fleet(names: list[str], infos: list[dict], runtime: str) -> tuple[str, str]:
    """(fingerprint_id, runtime version) shared by every device; FleetMismatch otherwise."""
    missing = [n for n, i in zip(names, infos) if not (i.get("runtime_versions") or {}).get(runtime)]
    if missing:
        raise MeasurementRejected(f"device(s) {', '.join(repr(m) for m in missing)} have no {runtime} installed")
    classes = {(i["fingerprint_id"], i["runtime_versions"][runtime]) for i in infos}
    if len(classes) > 1:
        detail = "; ".join(f"{n}: fingerprint {i['fingerprint_id']}, {runtime} {i['runtime_versions'][runtime]}"
                           for n, i in zip(names, infos))
        raise FleetMismatch("a fleet must be one hardware class with one runtime version, because its rows "
                            f"share point keys; got {detail}. Calibrate different hardware separately")
    return classes.pop()


def _worker(device, runtime: str, settings: MeasureSettings, todo: queue.Queue, results: queue.Queue) -> None:
    """Measure jobs until the sentinel; on DeviceUnavailable put the job back and report the loss."""
    while True:
        job = todo.get()
        if job is None:
            return
        job.attempts.append(device.name)
        try:
            # a keyed device (a farm) shares jobs by point key across hosts and restarts
            keyed = {"job_key": job.key} if getattr(device, "keyed", False) else {}
            result = device.measure(job.data, runtime, settings, **keyed)
        except DeviceUnavailable as exc:
            todo.put(job)
            results.put(("lost", device.name, job, exc))
            return
        except (MeasurementRejected, EdgepruneError, ValueError, OSError) as exc:
            results.put(("failed", device.name, job, exc))
            continue
        results.put(("done", device.name, job, result))


def run_jobs(devices: list, jobs: Iterable[Job], runtime: str, settings: MeasureSettings,
             on_stored: Callable[[Job, bool], None] | None = None) -> FleetStats:
    """Measure every job on whichever device is free; stores happen on this thread, one row at a time."""
    todo: queue.Queue = queue.Queue()
    results: queue.Queue = queue.Queue()
    # a farm device takes several jobs at once (`slots`): one thread each
    threads = [threading.Thread(target=_worker, args=(d, runtime, settings, todo, results),
                                name=f"fleet-{d.name}-{i}", daemon=True)
               for d in devices for i in range(getattr(d, "slots", 1))]
    in_process = any(getattr(d, "in_process", False) for d in devices)
    stats, alive = FleetStats(measured_by={d.name: 0 for d in devices}), len(threads)
    pending, source, exhausted, last_loss = 0, iter(jobs), False, None
    for thread in threads:
        thread.start()
    try:
        while True:
            # in-process devices share this CPU: never export while they measure
            ahead = alive if in_process else 2 * alive
            while not exhausted and pending < ahead:
                job = next(source, None)
                if job is None:
                    exhausted = True
                    break
                job.data = job.build()
                todo.put(job)
                pending += 1
            if pending == 0:
                return stats
            if alive == 0:
                if len(devices) == 1:
                    raise last_loss
                raise DeviceUnavailable("every device of the fleet is gone: " + "; ".join(
                    f"{n}: {e}" for n, e in stats.lost.items())) from last_loss
            status, name, job, payload = results.get()
            if status == "lost":
                alive, last_loss = alive - 1, payload
                stats.lost[name], stats.requeued = str(payload), stats.requeued + 1
                continue
            if status == "failed":
                raise payload
            pending -= 1
            stored = job.store(name, payload)
            stats.measured_by[name] += int(stored)
            job.data = None
            if on_stored:
                on_stored(job, stored)
    finally:
        for _ in threads:
            todo.put(None)
        # a worker still freeing an in-process runtime session when the interpreter exits aborts the process
        # ("terminate called without an active exception"): let them end first
        for thread in threads:
            thread.join(WIND_DOWN_S / len(threads))
