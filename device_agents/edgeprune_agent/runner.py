"""Deadline-bound measurement jobs: each runs in a child process that is killed at its deadline or on cancel."""
from __future__ import annotations

import atexit
import multiprocessing
import os
import signal
import sys
import threading
import time
from concurrent.futures import Future
from multiprocessing.connection import Connection, wait
from typing import Any, Dict, Optional

from .errors import AgentError, ModelInvalid, RuntimeUnavailable, SensorUnavailable

JOB_PROCESS_NAME = "edgeprune-job"
SETUP_S = 20.0  # model load, conditions, sensor open and process start, on a slow board
_RUNTIME_MODULES = ("onnxruntime", "ai_edge_litert", "tflite_runtime")
_REBUILD = {cls.__name__: cls for cls in (ModelInvalid, RuntimeUnavailable, SensorUnavailable, ValueError)}
_context = None
_context_lock = threading.Lock()


class DeadlineExceeded(AgentError):
    """The job ran past its deadline and its process was killed."""


class JobCancelled(AgentError):
    """The job was cancelled (DELETE /v1/jobs/{id}) and its process was killed."""


class MeasurementCrashed(AgentError):
    """The job's process died without a result (a runtime crash, or killed for memory)."""


class _DiedWaiting(MeasurementCrashed):
    """The job's process died before it took the job (killed while waiting): the job can run in a fresh one."""


class MeasurementFailed(AgentError):
    """The measurement raised an unexpected error inside the job process."""


class Cancel:
    """A one-shot cancel signal the waiting parent can select on next to the child's pipe (thread-safe)."""

    def __init__(self) -> None:
        self._recv, self._send = multiprocessing.Pipe(duplex=False)
        self._lock = threading.Lock()
        self._closed = False
        self.is_set = False

    def set(self) -> None:
        """Ask the job to stop (idempotent; a no-op once the job has finished)."""
        with self._lock:
            if not self.is_set and not self._closed:
                self.is_set = True
                self._send.send(None)

    def close(self) -> None:
        """Release the pipe."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._recv.close()
                self._send.close()


def energy_overhead_s(sensor, protocol) -> float:
    """Time the energy protocol adds to a job (zero for the estimate, which shares the timed loop)."""
    if sensor is None or sensor.kind == "estimate":
        return 0.0
    window = protocol.window_s(sensor)
    return 2.0 * (protocol.idle_s or window) + protocol.windows * window * 2.0 + 5.0


def job_deadline_s(max_duration_s: float, energy_s: float = 0.0, setup_s: float = SETUP_S) -> float:
    """Wall-clock deadline of one job: setup, warm-ups and profile (<= max/2 together), timing (<= max), energy."""
    return setup_s + 2.0 * float(max_duration_s) + energy_s


def _get_context():
    """forkserver where available: children fork from a clean single-threaded server with the agent imported."""
    global _context
    with _context_lock:
        if _context is None:
            if "forkserver" in multiprocessing.get_all_start_methods():
                _context = multiprocessing.get_context("forkserver")
                # runner too: each job process would otherwise import it (the job's code) on its own
                _context.set_forkserver_preload(["edgeprune_agent.runner", "edgeprune_agent.measure",
                                                 "edgeprune_agent.sensors", "onnxruntime"])
            else:
                _context = multiprocessing.get_context("spawn")
        return _context


def _portable_error(exc: BaseException) -> tuple:
    """(class name, message) for the parent; runtime errors while loading or running mean a bad model."""
    if isinstance(exc, MemoryError) or type(exc).__module__.startswith(_RUNTIME_MODULES):
        return "ModelInvalid", f"the model failed while running: {type(exc).__name__}: {exc}"
    name = type(exc).__name__ if type(exc).__name__ in _REBUILD else "MeasurementFailed"
    return name, str(exc) if name in _REBUILD else f"{type(exc).__name__}: {exc}"


def _name_process() -> None:
    """Linux: name the job process 'edgeprune-job' (visible in ps and top)."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        ctypes.CDLL(None).prctl(15, ctypes.c_char_p(JOB_PROCESS_NAME.encode()), 0, 0, 0)  # 15 = PR_SET_NAME
    except (OSError, AttributeError):
        pass


def _die_with_agent(lifeline: Connection) -> None:
    """End this job's process group once the agent is gone: only the agent holds the lifeline's other end.

    (The forkserver is no guide: every child keeps it alive, so PR_SET_PDEATHSIG on it would never fire.)
    """
    def watch() -> None:
        lifeline.poll(None)  # returns at EOF, when the agent has died
        if hasattr(os, "killpg"):
            os.killpg(0, signal.SIGKILL)
        os._exit(1)

    threading.Thread(target=watch, name="agent-lifeline", daemon=True).start()


def _child(jobs: Connection, conn: Connection, lifeline: Connection) -> None:
    """Job process body: get set up, wait for the one job, measure, send ("ok", result) or ("error", (class name,
    message)), exit. It never takes a second job: the agent kills it once it has answered."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if hasattr(os, "setpgrp"):
        os.setpgrp()  # its own group, so the agent can kill it with whatever it started (sensor tools)
    _name_process()
    _die_with_agent(lifeline)
    try:
        model_bytes, params, sensor, memory_limit_bytes = jobs.recv()
    except EOFError:  # the agent let this waiting process go without a job
        return
    finally:
        jobs.close()
    conn.send(("taken", None))  # from here a death is this job's crash, not a waiting process lost
    if memory_limit_bytes:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (memory_limit_bytes, memory_limit_bytes))
    opened = None
    try:
        from .energy import EnergyProtocol
        from .measure import measure_model
        from .sensors import open_sensor

        kwargs = dict(params)
        if sensor is not None:
            spec = dict(sensor)
            protocol = spec.pop("energy_protocol", None)
            opened = open_sensor(**spec)
            kwargs.update(sensor=opened, sysfs_root=spec.get("sysfs_root", "/"), bin_dir=spec.get("bin_dir"),
                          energy_protocol=EnergyProtocol(**protocol) if protocol else None)
        conn.send(("ok", measure_model(model_bytes, **kwargs)))
    except Exception as exc:  # every failure goes back to the parent as data
        conn.send(("error", _portable_error(exc)))
    finally:
        if opened is not None:
            opened.close()
        conn.close()


class JobProcess:
    """A started job process waiting on a pipe for its one job; the agent's ends of its three pipes."""

    def __init__(self, ctx) -> None:
        jobs_end, self.jobs = ctx.Pipe(duplex=False)
        self.results, results_end = ctx.Pipe(duplex=False)
        lifeline, self._keep_alive = ctx.Pipe(duplex=False)
        self.process = ctx.Process(target=_child, args=(jobs_end, results_end, lifeline), name=JOB_PROCESS_NAME,
                                   daemon=True)
        try:
            self.process.start()
        except BaseException:
            for conn in (self.jobs, self.results, self._keep_alive):
                conn.close()
            raise
        finally:
            for conn in (jobs_end, results_end, lifeline):
                conn.close()

    def kill(self) -> None:
        """SIGKILL the process and anything it started (its process group)."""
        if self.process.pid is None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError, AttributeError):
            if self.process.is_alive():
                self.process.kill()

    def close(self) -> None:
        """Kill and reap the process, and release the pipes."""
        self.kill()
        self.process.join(5.0)
        for conn in (self.jobs, self.results, self._keep_alive):
            conn.close()
        if self.process.exitcode is not None:
            self.process.close()


_next: Optional["Future[Optional[JobProcess]]"] = None  # the next job's process (None: start one), once the
_next_lock = threading.Lock()                              # last job's process is reaped
_exiting = False


@atexit.register  # before multiprocessing's own exit handler, which would wait for a waiting process forever
def _release_next() -> None:
    """At exit: start no more job processes, and end the one waiting (once its start has finished)."""
    global _next, _exiting
    with _next_lock:
        _exiting, future, _next = True, _next, None
    if future is not None:
        try:
            ready = future.result(30.0)
        except Exception:  # it never started, or is gone already
            return
        if ready is not None:
            ready.close()


def _replace(done: Optional[JobProcess], start: bool) -> None:
    """In the background: reap the finished job's process, then have the next job's ready: the one already
    waiting, or (``start``) a new one. The next job takes it only once the reaping is over, so a dying process
    never shares the CPU with a measurement."""
    global _next
    with _next_lock:
        if _exiting:  # done was killed already; multiprocessing reaps it at exit
            return
        waiting, _next = _next, Future()
        future = _next

    def work() -> None:
        try:
            if done is not None:
                done.close()
            ready = waiting.result() if waiting is not None else None
            future.set_result(JobProcess(_get_context()) if ready is None and start else ready)
        except BaseException as exc:  # the taker starts one itself and meets the error there
            future.set_exception(exc)

    threading.Thread(target=work, name="job-prestart", daemon=True).start()


def prestart() -> None:
    """Start the next job's process now, unless one waits already (at agent startup, and where a caller runs
    jobs with ``start_next=False``: once its answer is out)."""
    _replace(None, start=True)


def _take() -> JobProcess:
    """The waiting job process, or a new one when none waits (or it failed to start, or died waiting)."""
    global _next
    with _next_lock:
        future, _next = _next, None
    ready = None
    if future is not None:
        try:
            ready = future.result()
        except Exception:  # starting it failed: start one here, where the error (if it persists) is raised
            ready = None
    if ready is not None and ready.process.is_alive():
        return ready
    if ready is not None:
        ready.close()
    return JobProcess(_get_context())


def _crashed(process, taken: bool = True) -> MeasurementCrashed:
    """The error for a job process that ended without sending a result."""
    process.join(5.0)
    code = process.exitcode
    how = f"signal {-code} ({signal.Signals(-code).name})" if code and code < 0 else f"exit code {code}"
    if not taken:
        return _DiedWaiting(f"the job process died ({how}) before it took the job")
    return MeasurementCrashed(f"the job process died without a result ({how}): the runtime crashed or ran out "
                              "of memory on this model")


def run_measurement(model_bytes: bytes, params: Dict[str, Any], deadline_s: float,
                    sensor: Optional[Dict[str, Any]] = None, cancel: Optional[Cancel] = None,
                    memory_limit_bytes: Optional[int] = None, start_next: bool = True) -> Dict[str, Any]:
    """Run ``measure_model(model_bytes, **params)`` in a child process killed after ``deadline_s`` seconds.

    ``sensor``: ``open_sensor`` keyword arguments (plus ``energy_protocol`` as a dict), opened in the child.
    The child was started ahead of the job (by ``prestart`` or as the previous job ended), so process start is off
    the job's path; it runs this job only and is killed once it has answered. A waiting process that died before
    it took the job is replaced once, within the same deadline. ``start_next``: start the next job's process as
    this one ends; False where the caller calls ``prestart`` itself once its answer is out.
    Job processes fork from a forkserver that has the agent and onnxruntime imported, but multiprocessing still
    re-imports the calling program's ``__main__`` in each of them: keep it light and behind a __main__ guard.
    Raises DeadlineExceeded, JobCancelled, MeasurementCrashed, or the measurement's own error (ModelInvalid,
    RuntimeUnavailable, SensorUnavailable, ValueError, MeasurementFailed).
    """
    if not deadline_s > 0:
        raise ValueError(f"deadline_s must be > 0, got {deadline_s!r}")
    end = time.monotonic() + deadline_s
    message = (bytes(model_bytes), dict(params), sensor, memory_limit_bytes)
    try:
        return _run_in_next_process(message, end, deadline_s, cancel, start_next)
    except _DiedWaiting:  # killed as it waited for this job: once more, in a fresh process
        return _run_in_next_process(message, end, deadline_s, cancel, start_next)


def _run_in_next_process(message: tuple, end: float, deadline_s: float, cancel: Optional[Cancel],
                         start_next: bool) -> Dict[str, Any]:
    """Run the job in the waiting process (or a new one); kill it once it has answered."""
    job = _take()
    try:
        return _await_result(job, message, end, deadline_s, cancel)
    finally:
        job.kill()  # at once; reaping it (and starting the next job's process) happen off this job's path
        _replace(job, start=start_next)


def _await_result(job: JobProcess, message: tuple, end: float, deadline_s: float,
                  cancel: Optional[Cancel]) -> Dict[str, Any]:
    """Send the job to its process and wait for its answer, the deadline, a cancel or the process's death."""
    process, recv = job.process, job.results
    try:
        job.jobs.send(message)
    except OSError:  # it died since it was checked
        raise _crashed(process, taken=False) from None
    taken = False
    watch = [recv, process.sentinel] + ([cancel._recv] if cancel is not None else [])
    while True:
        remaining = end - time.monotonic()
        if remaining <= 0:
            raise DeadlineExceeded(f"deadline exceeded: the job ran past its {deadline_s:g} s deadline and "
                                   "was stopped (a hanging or very slow graph; lower the model's cost or "
                                   "raise max_duration_s)")
        ready = wait(watch, remaining)
        if cancel is not None and cancel.is_set:
            raise JobCancelled("cancelled: the job was cancelled and its process stopped")
        if recv in ready:
            try:
                status, payload = recv.recv()
            except EOFError:
                raise _crashed(process, taken) from None
            if status == "taken":
                taken = True
                continue
            if status == "ok":
                return payload
            name, message = payload
            raise _REBUILD.get(name, MeasurementFailed)(message)
        if process.sentinel in ready:
            raise _crashed(process, taken)
