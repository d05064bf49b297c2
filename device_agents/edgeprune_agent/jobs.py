"""Exclusive measurement worker: one thread drains a FIFO queue capped in jobs and bytes; jobs can be cancelled."""
from __future__ import annotations

import queue
import threading
import time
import uuid
from collections import OrderedDict
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Optional

from .runner import Cancel, JobCancelled

DEFAULT_MAX_QUEUED_BYTES = 256 * 2**20


class JobQueueFull(Exception):
    """Too many measurements (or bytes of models) are already waiting."""


@dataclass
class Job:
    """One queued measurement and its outcome."""

    job_id: str
    params: Dict[str, Any]
    model_bytes: Optional[bytes]
    deadline_s: float
    size: int = 0
    submitted: float = field(default_factory=time.monotonic)
    started: Optional[float] = None
    status: str = "queued"
    result: Optional[Dict[str, Any]] = None
    error: Optional[BaseException] = None
    finished: Optional[float] = None
    cancel: Cancel = field(default_factory=Cancel)
    future: "Future[Job]" = field(default_factory=Future)

    def __post_init__(self) -> None:
        # A running future cannot be cancelled by an awaiting HTTP handler that times out or goes away.
        self.future.set_running_or_notify_cancel()


RunFn = Callable[[Job], Dict[str, Any]]


class MeasureWorker:
    """Runs jobs one at a time, in submission order, on a single background thread."""

    def __init__(self, run_fn: RunFn, max_queued: int = 16, max_queued_bytes: int = DEFAULT_MAX_QUEUED_BYTES,
                 keep_finished: int = 256, keep_seconds: float = 3600.0):
        self._run_fn = run_fn
        self.max_queued = max_queued
        self.max_queued_bytes = max_queued_bytes
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
        """Cancel every waiting or running job and stop the worker."""
        with self._lock:
            thread, self._thread = self._thread, None
            pending = [j for j in self._jobs.values() if j.finished is None]
        for job in pending:
            self.cancel(job.job_id)
        if thread is not None:
            self._queue.put(None)
            thread.join(timeout)

    def _waiting(self) -> tuple:
        """(jobs, bytes) queued and not yet running (lock held)."""
        queued = [j for j in self._jobs.values() if j.status == "queued"]
        return len(queued), sum(j.size for j in queued)

    def check_room(self, size: int) -> None:
        """Raise JobQueueFull when a model of ``size`` bytes would not fit the queue now."""
        with self._lock:
            self._prune()
            self._check_room(size)

    def _check_room(self, size: int) -> None:
        """check_room with the lock held."""
        count, nbytes = self._waiting()
        if count >= self.max_queued:
            raise JobQueueFull(f"{count} measurements are already queued (limit {self.max_queued})")
        if nbytes + size > self.max_queued_bytes:
            raise JobQueueFull(f"queued models hold {nbytes} bytes; {size} more would pass the "
                               f"{self.max_queued_bytes}-byte queue limit")

    def submit(self, model_bytes: bytes, params: Dict[str, Any], deadline_s: float) -> Job:
        """Queue a measurement; raises JobQueueFull when the queue is full in jobs or bytes."""
        self.start()
        with self._lock:
            self._prune()
            self._check_room(len(model_bytes))
            job = Job(job_id=uuid.uuid4().hex, params=dict(params), model_bytes=model_bytes,
                      deadline_s=deadline_s, size=len(model_bytes))
            self._jobs[job.job_id] = job
        self._queue.put(job)
        return job

    def get(self, job_id: str) -> Optional[Job]:
        """The job with this id, or None when unknown or already forgotten."""
        with self._lock:
            self._prune()
            return self._jobs.get(job_id)

    def counts(self) -> Dict[str, int]:
        """How many known jobs are in each status."""
        with self._lock:
            out: Dict[str, int] = {}
            for job in self._jobs.values():
                out[job.status] = out.get(job.status, 0) + 1
            return out

    def ahead_s(self, job: Job) -> float:
        """Sum of the deadlines of the jobs before this one that have not finished (an upper bound on its wait)."""
        with self._lock:
            total = 0.0
            for other in self._jobs.values():
                if other is job:
                    break
                if other.finished is None:
                    total += other.deadline_s
            return total

    def cancel(self, job_id: str) -> Optional[Job]:
        """Cancel a queued job at once, or a running one by stopping its process; None when unknown."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None or job.finished is not None:
                return job
            if job.status == "queued":
                self._finish(job, error=JobCancelled("cancelled before it started"), status="cancelled")
                return job
        job.cancel.set()
        return job

    def _finish(self, job: Job, result: Optional[Dict[str, Any]] = None, error: Optional[BaseException] = None,
                status: str = "done") -> None:
        """Record the outcome, drop the model bytes and wake whoever waits on the job."""
        if error is not None:  # a kept traceback would keep the job's frames, and so its model bytes, alive
            error.__traceback__ = error.__context__ = error.__cause__ = None
        job.result, job.error, job.status = result, error, status
        job.model_bytes = None
        job.finished = time.monotonic()
        job.cancel.close()
        job.future.set_result(job)

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
        with self._lock:
            if job.status != "queued":  # cancelled while waiting
                return
            job.status, job.started = "running", time.monotonic()
        queue_wait_s = job.started - job.submitted
        try:
            result = self._run_fn(job)
            result["queue_wait_s"] = queue_wait_s
        except JobCancelled as exc:
            self._finish(job, error=exc, status="cancelled")
        except Exception as exc:  # report every job failure to its client, keep serving others
            self._finish(job, error=exc, status="failed")
        else:
            self._finish(job, result=result)
