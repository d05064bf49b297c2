"""Exclusive measurement worker: one thread drains a FIFO queue; finished jobs are kept for a while."""
from __future__ import annotations

import queue
import threading
import time
import uuid
from collections import OrderedDict
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Optional

MeasureFn = Callable[..., Dict[str, Any]]


class JobQueueFull(Exception):
    """Too many measurements are already waiting."""


@dataclass
class Job:
    """One queued measurement and its outcome."""

    job_id: str
    params: Dict[str, Any]
    model_bytes: Optional[bytes]
    submitted: float = field(default_factory=time.monotonic)
    status: str = "queued"
    result: Optional[Dict[str, Any]] = None
    error: Optional[BaseException] = None
    finished: Optional[float] = None
    future: "Future[Job]" = field(default_factory=Future)


class MeasureWorker:
    """Runs jobs one at a time, in submission order, on a single background thread."""

    def __init__(self, measure_fn: MeasureFn, max_queued: int = 16, keep_finished: int = 256,
                 keep_seconds: float = 3600.0):
        self._measure_fn = measure_fn
        self.max_queued = max_queued
        self.keep_finished = keep_finished
        self.keep_seconds = keep_seconds
        self._queue: "queue.Queue[Optional[Job]]" = queue.Queue()
        self._jobs: "OrderedDict[str, Job]" = OrderedDict()
        self._lock = threading.Lock()
        self._thread: Optional[threading.Thread] = None

    def start(self) -> None:
        """Start the worker thread (idempotent)."""
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="measure-worker", daemon=True)
                self._thread.start()

    def stop(self, timeout: Optional[float] = None) -> None:
        """Ask the worker to finish the current queue and exit."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join(timeout)

    def submit(self, model_bytes: bytes, params: Dict[str, Any]) -> Job:
        """Queue a measurement; raises JobQueueFull when max_queued jobs are already waiting."""
        self.start()
        with self._lock:
            self._prune()
            waiting = sum(1 for j in self._jobs.values() if j.status == "queued")
            if waiting >= self.max_queued:
                raise JobQueueFull(f"{waiting} measurements are already queued (limit {self.max_queued})")
            job = Job(job_id=uuid.uuid4().hex, params=dict(params), model_bytes=model_bytes)
            self._jobs[job.job_id] = job
        self._queue.put(job)
        return job

    def get(self, job_id: str) -> Optional[Job]:
        """The job with this id, or None when unknown or already forgotten."""
        with self._lock:
            self._prune()
            return self._jobs.get(job_id)

    def _prune(self) -> None:
        """Forget finished jobs beyond keep_finished or older than keep_seconds (lock held)."""
        now = time.monotonic()
        finished = [j for j in self._jobs.values() if j.finished is not None]
        excess = len(finished) - self.keep_finished
        for job in finished:
            if excess > 0 or now - job.finished > self.keep_seconds:
                del self._jobs[job.job_id]
                excess -= 1

    def _loop(self) -> None:
        """Take jobs in FIFO order until the stop sentinel arrives."""
        while True:
            job = self._queue.get()
            if job is None:
                return
            self._run(job)

    def _run(self, job: Job) -> None:
        """Run one job; any Exception marks it failed and the worker carries on."""
        job.status = "running"
        queue_wait_s = time.monotonic() - job.submitted
        try:
            result = self._measure_fn(job.model_bytes, **job.params)
            result["queue_wait_s"] = queue_wait_s
            job.result, job.status = result, "done"
        except Exception as exc:  # report every job failure to its client, keep serving others
            job.error, job.status = exc, "failed"
        finally:
            job.model_bytes = None
            job.finished = time.monotonic()
            job.future.set_result(job)
