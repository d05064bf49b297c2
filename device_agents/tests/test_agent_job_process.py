"""Job processes started ahead of their job: each runs one job only, and deadline, cancel and crashes still hold."""
import signal
import threading
import time

import psutil
import pytest

from agent_fixtures import conv_model  # noqa: F401 (fixtures)
from agent_testlib import loop_forever_bytes, serve_agent_process
from edgeprune_agent import runner
from edgeprune_agent.runner import (JOB_PROCESS_NAME, DeadlineExceeded, JobCancelled, MeasurementCrashed, Cancel,
                                    prestart, run_measurement)

FAST = {"warmup": 1, "min_repeats": 5, "min_duration_s": 0.05, "max_duration_s": 0.2}


def _live_job_processes(parent: psutil.Process) -> list:
    """The job processes descending from ``parent`` that are not dead or dying."""
    found = []
    for proc in parent.children(recursive=True):
        try:
            if proc.name() == JOB_PROCESS_NAME and proc.status() not in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD):
                found.append(proc)
        except psutil.NoSuchProcess:
            continue
    return found


def _job_processes(parent: psutil.Process, count: int, timeout: float = 30.0) -> list:
    """Wait until the same ``count`` job processes descend from ``parent`` for 0.2 s (a killed one is gone by
    then); return them."""
    end, last = time.monotonic() + timeout, None
    while True:
        pids = sorted(p.pid for p in _live_job_processes(parent))
        if len(pids) == count and pids == last:
            return [psutil.Process(pid) for pid in pids]
        assert time.monotonic() < end, f"{len(pids)} job processes, expected {count}"
        last = pids
        time.sleep(0.2)


def _run_in_thread(*args, **kwargs):
    """run_measurement in a thread; the returned dict gets its 'error' once the thread ends."""
    outcome = {}

    def body():
        try:
            outcome["result"] = run_measurement(*args, **kwargs)
        except Exception as exc:  # the test checks which one
            outcome["error"] = exc

    thread = threading.Thread(target=body)
    thread.start()
    return thread, outcome


def _busy(proc: psutil.Process, cpu_s: float = 0.1, timeout: float = 30.0) -> None:
    """Wait until ``proc`` has used ``cpu_s`` of CPU: it is running its job, not waiting for one."""
    end = time.monotonic() + timeout
    while sum(proc.cpu_times()[:2]) < cpu_s:
        assert time.monotonic() < end, "the job process never started working"
        time.sleep(0.01)


@pytest.mark.parametrize("stop", ["cancel", "deadline", "crash"])
def test_a_job_runs_in_the_waiting_process_which_never_takes_a_second_one(conv_model, stop):
    me = psutil.Process()
    assert run_measurement(conv_model, FAST, 30.0)["latency_ms"]["n"] >= 5
    (waiting,) = _job_processes(me, 1)  # started as the last job ended
    cancel = Cancel()
    thread, outcome = _run_in_thread(loop_forever_bytes(), {**FAST, "max_duration_s": 60},
                                     8.0 if stop == "deadline" else 60.0, cancel=cancel)
    _busy(waiting)
    assert [p.pid for p in _job_processes(me, 1)] == [waiting.pid]  # the job's process; no other starts meanwhile
    if stop == "cancel":
        cancel.set()
    elif stop == "crash":
        waiting.send_signal(signal.SIGKILL)  # as the kernel's OOM killer or a runtime crash would end it
    thread.join(30)
    cancel.close()
    expected = {"cancel": JobCancelled, "deadline": DeadlineExceeded, "crash": MeasurementCrashed}[stop]
    assert isinstance(outcome.get("error"), expected), outcome
    assert not psutil.wait_procs([waiting], timeout=10)[1], "the job's process outlived its job"
    (successor,) = _job_processes(me, 1)
    assert successor.pid != waiting.pid
    assert run_measurement(conv_model, FAST, 30.0)["latency_ms"]["n"] >= 5
    assert not psutil.wait_procs([successor], timeout=10)[1], "a process that ran a job was kept"


def test_a_waiting_process_that_died_is_replaced(conv_model):
    me = psutil.Process()
    run_measurement(conv_model, FAST, 30.0)
    (waiting,) = _job_processes(me, 1)
    waiting.kill()
    psutil.wait_procs([waiting], timeout=10)
    assert run_measurement(conv_model, FAST, 30.0)["latency_ms"]["n"] >= 5


def test_a_job_given_to_a_process_that_died_waiting_runs_in_a_fresh_one(conv_model):
    me = psutil.Process()
    run_measurement(conv_model, FAST, 30.0)
    ready = runner._next.result(30.0)
    (waiting,) = _job_processes(me, 1)
    waiting.kill()
    psutil.wait_procs([waiting], timeout=10)
    # the forkserver reports a child's exit a moment after reaping it: the agent may still see it alive
    ready.process.is_alive = lambda: True
    assert run_measurement(conv_model, FAST, 30.0)["latency_ms"]["n"] >= 5
    (successor,) = _job_processes(me, 1)
    assert successor.pid != waiting.pid


def test_the_waiting_process_never_outlives_the_agent(tmp_path):
    proc, _ = serve_agent_process(tmp_path)
    try:
        (waiting,) = _job_processes(psutil.Process(proc.pid), 1)  # started with the agent, before any job
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        assert not psutil.wait_procs([waiting], timeout=10)[1], "the waiting job process survived the agent"
    finally:
        if proc.poll() is None:
            proc.kill()


def test_without_start_next_the_successor_waits_for_prestart(conv_model):
    me = psutil.Process()
    run_measurement(conv_model, FAST, 30.0)
    (used,) = _job_processes(me, 1)
    assert run_measurement(conv_model, FAST, 30.0, start_next=False)["latency_ms"]["n"] >= 5
    assert not psutil.wait_procs([used], timeout=10)[1], "the job's process outlived its job"
    _job_processes(me, 0)  # reaped, and none started after it
    prestart()
    (waiting,) = _job_processes(me, 1)
    prestart()  # one waits already: no second one
    assert [p.pid for p in _job_processes(me, 1)] == [waiting.pid]
    assert run_measurement(conv_model, FAST, 30.0)["latency_ms"]["n"] >= 5
    assert not psutil.wait_procs([waiting], timeout=10)[1], "the waiting process was not the one that ran the job"
