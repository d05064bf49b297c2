"""One request cannot take the agent down: bounded settings, deadlines, cancellation, byte caps, body timeouts."""
import signal
import socket
import threading
import time

import httpx
import psutil
import pytest

from agent_fixtures import conv_model  # noqa: F401 (fixtures)
from agent_testlib import TOKEN, LiveServer, conv_relu_bytes, loop_forever_bytes, serve_agent_process
from edgeprune_agent.measure import MAX_DURATION_S, MAX_WARMUP, max_threads
from edgeprune_agent.runner import JOB_PROCESS_NAME, DeadlineExceeded, JobCancelled, run_measurement

OCTET = {"Content-Type": "application/octet-stream"}
FAST = {"warmup": 1, "min_repeats": 5, "min_duration_s": 0.05, "max_duration_s": 0.2}
SETUP_S = 5.0  # generous for a loaded CI machine: a valid job must never meet its deadline here


@pytest.fixture(scope="module")
def server():
    with LiveServer(sensor_name="estimate", job_setup_s=SETUP_S, body_idle_timeout_s=0.5,
                    max_upload_bytes=200_000, max_queued_bytes=400_000) as live:
        yield live


def _wait_status(client, job_id, wanted, timeout=30.0):
    """Poll a job until its status is one of ``wanted`` (the agent's own state, no fixed sleeps)."""
    end = time.monotonic() + timeout
    while True:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in wanted:
            return job
        assert time.monotonic() < end, f"job stayed {job['status']}"
        time.sleep(0.01)


@pytest.mark.parametrize("params, named", [
    ({"threads": max_threads() + 1}, f"threads must be an integer in [1, {max_threads()}]"),
    ({"threads": 10**30}, "threads must be an integer in"),
    ({"warmup": MAX_WARMUP + 1}, f"[0, {MAX_WARMUP}]"),
    ({"min_duration_s": 1e6, "max_duration_s": 1e6}, f"(0, {MAX_DURATION_S:g}]"),
    ({"min_repeats": 10**9}, "min_repeats must be an integer in [1, 100000]"),
])
def test_out_of_range_settings_get_400_with_the_range(server, conv_model, params, named):
    with server.client() as client:
        response = client.post("/v1/measure", params=params, content=conv_model, headers=OCTET)
    assert response.status_code == 400
    assert named in response.json()["detail"]


def test_hanging_graph_is_killed_at_its_deadline(server):
    with server.client() as client:
        t0 = time.monotonic()
        response = client.post("/v1/measure", params={**FAST, "max_duration_s": 0.05},
                               content=loop_forever_bytes(), headers=OCTET)
        took = time.monotonic() - t0
    assert response.status_code == 422 and response.json()["error"] == "deadline exceeded"
    assert SETUP_S + 0.1 <= took < SETUP_S + 0.1 + 1.0  # deadline = setup + 2 x max_duration_s


def test_delete_cancels_running_and_queued_jobs(server, conv_model):
    with server.client() as client:
        running = client.post("/v1/measure", params={**FAST, "wait": "false", "max_duration_s": 60},
                              content=loop_forever_bytes(), headers=OCTET).json()
        assert running["deadline_s"] == pytest.approx(SETUP_S + 120.0)
        queued = client.post("/v1/measure", params={**FAST, "wait": "false"}, content=conv_model,
                             headers=OCTET).json()
        assert queued["ahead_s"] >= running["deadline_s"]
        _wait_status(client, running["job_id"], {"running"})
        t0 = time.monotonic()
        gone = client.delete(f"/v1/jobs/{queued['job_id']}")
        stopped = client.delete(f"/v1/jobs/{running['job_id']}")
        assert time.monotonic() - t0 < 5.0
        assert gone.status_code == 200 and gone.json()["status"] == "cancelled"
        assert stopped.status_code == 200 and stopped.json()["status"] == "cancelled"
        assert stopped.json()["error"]["http_status"] == 409
        assert client.delete(f"/v1/jobs/{running['job_id']}").status_code == 409
        assert client.delete("/v1/jobs/nope").status_code == 404
        after = client.post("/v1/measure", params=FAST, content=conv_model, headers=OCTET)  # worker still serves
    assert after.status_code == 200 and after.json()["latency_ms"]["n"] >= 5


def test_long_poll_answers_when_the_job_ends(server, conv_model):
    with server.client() as client:
        job = client.post("/v1/measure", params={**FAST, "wait": "false"}, content=conv_model,
                          headers=OCTET).json()
        t0 = time.monotonic()
        view = client.get(f"/v1/jobs/{job['job_id']}", params={"wait_s": 20}).json()
        assert view["status"] == "done" and time.monotonic() - t0 < 20
        assert view["ran_s"] <= view["deadline_s"] and view["result"]["latency_ms"]["n"] >= 5
        assert client.get(f"/v1/jobs/{job['job_id']}", params={"wait_s": 31}).status_code == 422


def test_queue_is_capped_in_bytes(server):
    big = b"\0" * 150_000  # never loaded: queued behind the hanging job, then cancelled
    with server.client() as client:
        hold = client.post("/v1/measure", params={**FAST, "wait": "false", "max_duration_s": 60},
                           content=loop_forever_bytes(), headers=OCTET).json()
        _wait_status(client, hold["job_id"], {"running"})
        first = client.post("/v1/measure", params={**FAST, "wait": "false"}, content=big, headers=OCTET)
        second = client.post("/v1/measure", params={**FAST, "wait": "false"}, content=big, headers=OCTET)
        third = client.post("/v1/measure", params={**FAST, "wait": "false"}, content=big, headers=OCTET)
        assert [first.status_code, second.status_code, third.status_code] == [202, 202, 503]
        assert "queue limit" in third.json()["detail"] and third.headers["Retry-After"]
        for job in (hold, first.json(), second.json()):
            client.delete(f"/v1/jobs/{job['job_id']}")


def test_a_stalled_body_gets_408(server):
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(f"POST /v1/measure HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {TOKEN}\r\n"
                     "Content-Type: application/octet-stream\r\nContent-Length: 1000\r\n\r\n".encode()
                     + b"x" * 10)
        t0 = time.monotonic()
        answer = b""
        while b"}" not in answer:
            chunk = sock.recv(4096)
            assert chunk, f"connection closed after {answer!r}"
            answer += chunk
        answer = answer.decode()
    assert answer.startswith("HTTP/1.1 408") and "body timeout" in answer
    assert time.monotonic() - t0 < 3.0


def test_huge_declared_input_is_refused(server):
    with server.client() as client:
        response = client.post("/v1/measure", params=FAST, content=conv_relu_bytes([1, 3, 40000, 40000]),
                               headers=OCTET)
    assert response.status_code == 422 and "per input" in response.json()["detail"]


def test_runner_reports_deadline_and_cancel(conv_model):
    with pytest.raises(DeadlineExceeded, match="deadline exceeded"):
        run_measurement(loop_forever_bytes(), FAST, 0.5)
    from edgeprune_agent.runner import Cancel

    cancel = Cancel()
    timer = threading.Timer(0.3, cancel.set)
    timer.start()
    with pytest.raises(JobCancelled):
        run_measurement(loop_forever_bytes(), FAST, 60.0, cancel=cancel)
    cancel.close()
    result = run_measurement(conv_model, FAST, 30.0, sensor={"name": "estimate"})
    assert result["energy_mj"]["kind"] == "estimate" and result["latency_ms"]["n"] >= 5


def _agent_running_a_hanging_job(tmp_path):
    """A real `edgeprune-agent serve` process whose job process is stuck in a never-ending graph."""
    proc, url = serve_agent_process(tmp_path)
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30) as client:
        job = client.post("/v1/measure", params={**FAST, "wait": "false", "max_duration_s": 300},
                          content=loop_forever_bytes(), headers=OCTET).json()
        _wait_status(client, job["job_id"], {"running"})
    end = time.monotonic() + 30
    while not (jobs := [p for p in psutil.Process(proc.pid).children(recursive=True)
                        if p.name() == JOB_PROCESS_NAME]):  # "running" is set just before the fork
        assert time.monotonic() < end, "no job process appeared"
        time.sleep(0.01)
    assert len(jobs) == 1
    return proc, jobs[0]


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL])
def test_the_job_process_never_outlives_the_agent(tmp_path, how):
    proc, job = _agent_running_a_hanging_job(tmp_path)
    try:
        proc.send_signal(how)
        proc.wait(timeout=30)
        gone, alive = psutil.wait_procs([job], timeout=10)
        assert not alive, f"job process survived {how.name}"
    finally:
        if proc.poll() is None:
            proc.kill()
        if job.is_running():
            job.kill()


def test_job_memory_limit_turns_an_oversized_graph_into_a_model_error(conv_model):
    assert run_measurement(conv_model, FAST, 30.0, memory_limit_bytes=1024 * 2**20)["latency_ms"]["n"] >= 5
    from edgeprune_agent.errors import ModelInvalid

    with pytest.raises(ModelInvalid, match="MemoryError"):  # 3 x 4096 x 4096 floats fit the input cap, not 600 MiB
        run_measurement(conv_relu_bytes([1, 3, 4096, 4096]), FAST, 30.0, memory_limit_bytes=600 * 2**20)
