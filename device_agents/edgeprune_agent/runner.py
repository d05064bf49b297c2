"""Deadline-bound measurement jobs: each runs in a child process that is killed at its deadline or on cancel."""
from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import threading
import time
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


def _child(conn: Connection, lifeline: Connection, model_bytes: bytes, params: Dict[str, Any],
           sensor: Optional[Dict[str, Any]], memory_limit_bytes: Optional[int]) -> None:
    """Job process body: measure, send ("ok", result) or ("error", (class name, message)), exit."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if hasattr(os, "setpgrp"):
        os.setpgrp()  # its own group, so the agent can kill it with whatever it started (sensor tools)
    _name_process()
    _die_with_agent(lifeline)
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


def _stop(process) -> None:
    """Kill the job process and anything it started (its process group), and reap it."""
    if process.pid is None:
        return
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError, AttributeError):
        if process.is_alive():
            process.kill()
    process.join(5.0)


def _crashed(process) -> MeasurementCrashed:
    """The error for a job process that ended without sending a result."""
    process.join(5.0)
    code = process.exitcode
    how = f"signal {-code} ({signal.Signals(-code).name})" if code and code < 0 else f"exit code {code}"
    return MeasurementCrashed(f"the job process died without a result ({how}): the runtime crashed or ran out "
                              "of memory on this model")


def run_measurement(model_bytes: bytes, params: Dict[str, Any], deadline_s: float,
                    sensor: Optional[Dict[str, Any]] = None, cancel: Optional[Cancel] = None,
                    memory_limit_bytes: Optional[int] = None) -> Dict[str, Any]:
    """Run ``measure_model(model_bytes, **params)`` in a child process killed after ``deadline_s`` seconds.

    ``sensor``: ``open_sensor`` keyword arguments (plus ``energy_protocol`` as a dict), opened in the child.
    Job processes fork from a forkserver that has the agent and onnxruntime imported, but multiprocessing still
    re-imports the calling program's ``__main__`` in each of them: keep it light and behind a __main__ guard.
    Raises DeadlineExceeded, JobCancelled, MeasurementCrashed, or the measurement's own error (ModelInvalid,
    RuntimeUnavailable, SensorUnavailable, ValueError, MeasurementFailed).
    """
    if not deadline_s > 0:
        raise ValueError(f"deadline_s must be > 0, got {deadline_s!r}")
    ctx = _get_context()
    recv, send = ctx.Pipe(duplex=False)
    lifeline, keep_alive = ctx.Pipe(duplex=False)
    process = ctx.Process(target=_child, args=(send, lifeline, bytes(model_bytes), dict(params), sensor,
                                               memory_limit_bytes), name=JOB_PROCESS_NAME, daemon=True)
    end = time.monotonic() + deadline_s
    try:
        process.start()
        send.close()
        lifeline.close()
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
                    raise _crashed(process) from None
                if status == "ok":
                    return payload
                name, message = payload
                raise _REBUILD.get(name, MeasurementFailed)(message)
            if process.sentinel in ready:
                raise _crashed(process)
    finally:
        _stop(process)
        for conn in (recv, send, lifeline, keep_alive):
            conn.close()
        if process.exitcode is not None:
            process.close()
