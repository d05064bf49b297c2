"""Concurrent clients are served one measurement at a time, and all get results."""
import threading
import time
from datetime import datetime

import pytest

from agent_fixtures import conv_model  # noqa: F401 (fixtures)
from agent_testlib import LiveServer

OCTET = {"Content-Type": "application/octet-stream"}


@pytest.fixture(scope="module")
def server():
    with LiveServer(sensor_name="estimate") as live:
        yield live


def test_four_clients_never_overlap(server, conv_model):
    params = {"warmup": 1, "min_repeats": 5, "min_duration_s": 0.3}
    responses = [None] * 4

    def post(i):
        with server.client() as client:
            responses[i] = client.post("/v1/measure", params=params, content=conv_model, headers=OCTET)

    threads = [threading.Thread(target=post, args=(i,)) for i in range(4)]
    worker = server.app.state.worker
    for t in threads:
        t.start()
    end = time.monotonic() + 30
    while worker.counts() != {"running": 1, "queued": 3}:  # all four submitted, one measuring
        assert time.monotonic() < end, f"jobs never all queued: {worker.counts()}"
        time.sleep(0.005)
    with server.client() as client:  # the event loop must answer while a measurement runs
        assert client.get("/v1/health", timeout=2).status_code == 200
        busy = [client.get(f"/v1/jobs/{i}").status_code for i in range(2)]
    assert worker.counts().get("running") == 1, "health was not answered during a measurement"
    assert busy == [404, 404]
    for t in threads:
        t.join(60)
    assert all(r is not None and r.status_code == 200 for r in responses)
    results = [r.json() for r in responses]
    intervals = sorted((datetime.fromisoformat(r["started_at"]), datetime.fromisoformat(r["finished_at"]))
                       for r in results)
    for (_, end), (start, _) in zip(intervals, intervals[1:]):
        assert end <= start, "two measurements ran at the same time"
    assert all(r["wall_s"] >= 0.3 for r in results)
    waits = sorted(r["queue_wait_s"] for r in results)
    assert waits[-1] >= 0.3 * 2  # the last one in line waited for at least the others' timed loops
