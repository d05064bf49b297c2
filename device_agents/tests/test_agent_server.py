"""The HTTP API against a real uvicorn server on a loopback port."""
import time

import httpx
import pytest

from agent_fixtures import conv_model, tflite_model, live_server, small_upload_server  # noqa: F401 (fixtures)
from agent_testlib import TOKEN, int64_input_bytes
from edgeprune_agent import __version__, measure_model, runtimes
from edgeprune_agent.sensors import open_sensor

FAST = {"warmup": 2, "min_repeats": 10, "min_duration_s": 0.05}
OCTET = {"Content-Type": "application/octet-stream"}


def test_health_needs_no_token(live_server):
    response = httpx.get(live_server.url + "/v1/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "version": __version__}


@pytest.mark.parametrize("auth", [None, "Bearer wrong-token", f"Basic {TOKEN}", TOKEN,
                                  f"Bearer {TOKEN}x"])
def test_info_and_measure_need_the_token(live_server, conv_model, auth):
    headers = {"Authorization": auth} if auth else {}
    with httpx.Client(base_url=live_server.url, headers=headers) as client:
        for response in (client.get("/v1/info"),
                         client.post("/v1/measure", content=conv_model, headers=OCTET),
                         client.get("/v1/jobs/abc")):
            assert response.status_code == 401
            assert response.headers["www-authenticate"] == "Bearer"
            assert response.json()["error"] == "unauthorized"


def test_info(live_server):
    with live_server.client() as client:
        info = client.get("/v1/info").json()
    assert info["available_sensors"][-1] == "estimate" and len(info["fingerprint_id"]) == 16


def test_measure_matches_in_process_result(live_server, conv_model):
    with live_server.client() as client:
        response = client.post("/v1/measure", params=FAST, content=conv_model, headers=OCTET)
    assert response.status_code == 200
    remote = response.json()
    local = measure_model(conv_model, sensor=open_sensor("estimate"), **FAST)
    assert set(remote) == set(local) | {"queue_wait_s"}
    for key in ("latency_ms", "energy_mj", "runtime", "device", "conditions_before"):
        assert set(remote[key]) == set(local[key]), key
    for key in ("settings", "inputs", "model_sha256", "schema", "device"):
        assert remote[key] == local[key], key
    assert remote["runtime"] == local["runtime"]
    assert remote["energy_mj"]["kind"] == "estimate"
    assert remote["latency_ms"]["n"] >= 10 and remote["queue_wait_s"] >= 0


def test_litert_and_threads_over_http(live_server, tflite_model):
    with live_server.client() as client:
        response = client.post("/v1/measure", params={**FAST, "runtime": "litert", "threads": 2},
                               content=tflite_model, headers=OCTET)
    assert response.status_code == 200
    assert response.json()["runtime"]["name"] == "litert"
    assert response.json()["runtime"]["threads"] == 2


def test_garbage_is_422_and_server_keeps_serving(live_server, conv_model):
    with live_server.client() as client:
        bad = client.post("/v1/measure", params=FAST, content=b"\x00garbage" * 50, headers=OCTET)
        assert bad.status_code == 422
        assert bad.json()["error"] == "model invalid"
        assert "INVALID_PROTOBUF" in bad.json()["detail"]
        good = client.post("/v1/measure", params=FAST, content=conv_model, headers=OCTET)
        assert good.status_code == 200 and good.json()["latency_ms"]["n"] >= 10


def test_empty_body_is_400(live_server):
    with live_server.client() as client:
        response = client.post("/v1/measure", content=b"", headers=OCTET)
    assert response.status_code == 400
    assert response.json()["error"] == "empty body"


@pytest.mark.parametrize("params, status, error", [
    ({"runtime": "tensorrt"}, 400, "unknown runtime"),
    ({"threads": 0}, 400, "invalid settings"),
    ({"min_duration_s": 2, "max_duration_s": 1}, 400, "invalid settings"),
    ({"threads": "many"}, 422, "invalid request parameters"),
    ({"min_duration_s": "fast"}, 422, "invalid request parameters"),
    ({"thread": 2}, 400, "unknown parameter"),  # a misspelt setting is refused, not silently ignored
    ({"": "0.0"}, 400, "unknown parameter"),
])
def test_bad_parameters(live_server, conv_model, params, status, error):
    with live_server.client() as client:
        response = client.post("/v1/measure", params=params, content=conv_model, headers=OCTET)
    assert response.status_code == status
    body = response.json()
    assert body["error"] == error and body["detail"]


def test_runtime_not_installed_is_501(live_server, conv_model, monkeypatch):
    entry = dict(runtimes.KNOWN_RUNTIMES["litert"], modules=("edgeprune_no_such_module",))
    monkeypatch.setitem(runtimes.KNOWN_RUNTIMES, "litert", entry)
    with live_server.client() as client:
        response = client.post("/v1/measure", params={"runtime": "litert"}, content=conv_model, headers=OCTET)
    assert response.status_code == 501
    assert "pip install ai-edge-litert" in response.json()["detail"]


def test_job_polling(live_server, conv_model):
    with live_server.client() as client:
        queued = client.post("/v1/measure", params={**FAST, "wait": "false"}, content=conv_model,
                             headers=OCTET)
        assert queued.status_code == 202
        job_id = queued.json()["job_id"]
        assert queued.json()["status"] == "queued"
        deadline = time.monotonic() + 30
        while True:
            job = client.get(f"/v1/jobs/{job_id}").json()
            assert job["status"] in ("queued", "running", "done")
            if job["status"] == "done" or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert job["status"] == "done"
        assert job["result"]["model_sha256"] and job["result"]["latency_ms"]["n"] >= 10
        assert client.get("/v1/jobs/does-not-exist").status_code == 404


def test_failed_job_reports_error(live_server):
    with live_server.client() as client:
        job_id = client.post("/v1/measure", params={"wait": "false"}, content=b"junk" * 10,
                             headers=OCTET).json()["job_id"]
        deadline = time.monotonic() + 30
        while (job := client.get(f"/v1/jobs/{job_id}").json())["status"] in ("queued", "running"):
            assert time.monotonic() < deadline
            time.sleep(0.05)
    assert job["status"] == "failed"
    assert job["error"]["http_status"] == 422 and job["error"]["error"] == "model invalid"
    assert "result" not in job


def test_int64_model_over_http(live_server):
    with live_server.client() as client:
        response = client.post("/v1/measure", params=FAST, content=int64_input_bytes(), headers=OCTET)
    assert response.json()["inputs"] == {"ids": {"shape": [1, 4], "dtype": "int64"}}


def test_upload_limit_by_content_length(small_upload_server):
    with small_upload_server.client() as client:
        response = client.post("/v1/measure", content=b"x" * 4096, headers=OCTET)
    assert response.status_code == 413
    assert "1024 bytes" in response.json()["detail"]


def test_upload_limit_while_streaming(small_upload_server):
    def chunks():
        for _ in range(8):
            yield b"y" * 512

    with small_upload_server.client() as client:
        response = client.post("/v1/measure", content=chunks(), headers=OCTET)
        assert response.status_code == 413
        assert "1024 bytes" in response.json()["detail"]
        assert client.get("/v1/health").status_code == 200


def test_create_app_rejects_empty_token():
    from edgeprune_agent import create_app
    with pytest.raises(ValueError, match="token"):
        create_app("  ")
