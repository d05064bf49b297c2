"""The host driving a real agent process over loopback HTTP, as `--device NAME` does."""
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from conftest import FAST, free_port, run_cli, start_agent
from edgeprune.measure.devices import DeviceUnavailable, MeasurementRejected
from edgeprune.measure.registry import open_device
from edgeprune.measure.settings import MeasureSettings


@pytest.fixture
def agent(tmp_path):
    """`edgeprune agent serve` in its own process on a free loopback port; yields (url, token_file, proc)."""
    token_file = tmp_path / "agent.token"
    token_file.write_text("s3cret-token\n")
    proc, url = start_agent(token_file)
    yield url, token_file, proc
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)


def test_device_add_list_check(agent):
    url, token_file, _ = agent
    added = json.loads(run_cli("device", "add", "pi", "--url", url, "--token-file", token_file, "--json").stdout)
    assert added["url"] == url
    listed = json.loads(run_cli("device", "list", "--json").stdout)
    assert [d["name"] for d in listed["devices"]] == ["local", "pi"]
    checked = json.loads(run_cli("device", "check", "pi", "--json").stdout)
    assert checked["info"]["fingerprint_id"] and "runtime_versions" in checked["info"]
    assert any("estimate" in w for w in checked["warnings"])  # no power sensor here
    local = json.loads(run_cli("device", "check", "--json").stdout)
    assert local["info"]["fingerprint_id"] == checked["info"]["fingerprint_id"]  # same machine


def test_wrong_token_is_refused(agent, tmp_path):
    url, _, _ = agent
    bad = tmp_path / "bad.token"
    bad.write_text("nope")
    run_cli("device", "add", "evil", "--url", url, "--token-file", bad)
    with pytest.raises(MeasurementRejected, match="401"):
        open_device("evil").info()


def test_calibrate_through_agent_matches_local_schema(agent, tmp_path):
    url, token_file, _ = agent
    run_cli("device", "add", "pi", "--url", url, "--token-file", token_file)
    common = ["--model", "demo_cnn", "--points", "3", "--network-variants", "2", *FAST, "--json"]
    remote = json.loads(run_cli("calibrate", "--device", "pi", "--table", tmp_path / "pi.sqlite",
                                *common).stdout)
    local = json.loads(run_cli("calibrate", "--device", "local", "--table", tmp_path / "local.sqlite",
                               *common).stdout)
    assert set(remote) == set(local)
    assert remote["points_measured"] == local["points_measured"] > 0
    assert remote["energy_kind"] == local["energy_kind"] == "estimate"
    rows = {}
    for name in ("pi", "local"):
        db = sqlite3.connect(tmp_path / f"{name}.sqlite")
        db.row_factory = sqlite3.Row
        rows[name] = db.execute("SELECT * FROM layer_measurements ORDER BY id").fetchone()
    assert rows["pi"].keys() == rows["local"].keys()
    assert rows["pi"]["device_name"] == "pi"
    remote_result, local_result = (json.loads(rows[n]["result_json"]) for n in ("pi", "local"))
    assert set(remote_result) - set(local_result) == {"queue_wait_s"}
    assert set(remote_result["latency_ms"]) == set(local_result["latency_ms"])


def test_device_disappearing_mid_run_keeps_measured_points(agent, tmp_path):
    url, token_file, proc = agent
    run_cli("device", "add", "pi", "--url", url, "--token-file", token_file)
    table = tmp_path / "t.sqlite"
    args = [sys.executable, "-m", "edgeprune.cli.main", "calibrate", "--device", "pi", "--model", "resnet20",
            "--points", "6", "--network-variants", "0", "--table", str(table), "--warmup", "1",
            "--min-repeats", "3", "--min-duration", "0.05", "--json"]
    cal = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ)
    deadline = time.time() + 120
    count = 0
    while count < 5 and time.time() < deadline:
        time.sleep(0.05)
        try:
            count = sqlite3.connect(table).execute("SELECT COUNT(*) FROM layer_measurements").fetchone()[0]
        except sqlite3.OperationalError:
            pass
    proc.kill()  # the device goes away
    out, _ = cal.communicate(timeout=120)
    assert cal.returncode == 1
    error = json.loads(out)["error"]
    assert "did not answer" in error and "resume" in error
    kept = sqlite3.connect(table).execute("SELECT COUNT(*) FROM layer_measurements").fetchone()[0]
    assert kept >= 5


def test_measure_rejects_garbage_through_host_client(agent):
    url, token_file, _ = agent
    run_cli("device", "add", "pi", "--url", url, "--token-file", token_file)
    with pytest.raises(MeasurementRejected, match="422"):
        open_device("pi").measure(b"not a model", "onnxruntime", MeasureSettings(min_duration_s=0.01))


def test_unreachable_device(tmp_path):
    token = tmp_path / "t"
    token.write_text("x")
    run_cli("device", "add", "gone", "--url", f"http://127.0.0.1:{free_port()}", "--token-file", token)
    device = open_device("gone")
    device.silent_after_s = 1.0
    with pytest.raises(DeviceUnavailable, match="did not answer"):
        device.info()


def test_a_stopped_agent_is_reported_within_seconds(agent):
    url, token_file, proc = agent
    run_cli("device", "add", "pi", "--url", url, "--token-file", token_file)
    device = open_device("pi")
    device.request_timeout_s, device.silent_after_s = 1.0, 3.0
    assert device.health()["status"] == "ok"
    proc.send_signal(signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        with pytest.raises(DeviceUnavailable, match="did not answer for"):
            device.info()
        assert time.monotonic() - t0 < 3.0 + 2 * 1.0 + 1.0  # silent window + the last timed-out request
    finally:
        proc.send_signal(signal.SIGCONT)


def test_busy_answers_are_retried_after_the_time_they_name(tmp_path):
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    import threading

    calls = []

    class Busy(BaseHTTPRequestHandler):
        def do_GET(self):
            calls.append(time.monotonic())
            first = len(calls) == 1
            body = b'{"error": "queue full"}' if first else b'{"status": "ok"}'
            self.send_response(503 if first else 200)
            if first:
                self.send_header("Retry-After", "1")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Busy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        from edgeprune.measure.devices import AgentDevice

        device = AgentDevice("busy", f"http://127.0.0.1:{server.server_port}", "t")
        assert device.health() == {"status": "ok"}
        assert len(calls) == 2 and calls[1] - calls[0] >= 1.0
        device.busy_wait_s = 0.5  # a Retry-After past the busy budget is reported, not slept on
        calls.clear()
        with pytest.raises(DeviceUnavailable, match="503"):
            device.health()
    finally:
        server.shutdown()


def _self_signed(tmp_path):
    """A self-signed certificate for 127.0.0.1 made with the openssl CLI; returns (cert, key, sha256 pin)."""
    cert, key = tmp_path / "agent.crt", tmp_path / "agent.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=agent",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"], check=True, capture_output=True)
    der = subprocess.run(["openssl", "x509", "-in", str(cert), "-outform", "DER"], check=True,
                         capture_output=True).stdout
    import hashlib

    return cert, key, "sha256:" + hashlib.sha256(der).hexdigest()


def test_https_agent_with_ca_cert_or_pinned_fingerprint(tmp_path):
    cert, key, pin = _self_signed(tmp_path)
    token_file = tmp_path / "agent.token"
    token_file.write_text("tls-token\n")
    proc, url = start_agent(token_file, "--tls-cert", str(cert), "--tls-key", str(key), tls_ca=cert)
    try:
        assert url.startswith("https://")
        run_cli("device", "add", "ca", "--url", url, "--token-file", token_file, "--ca-cert", cert)
        colons = ":".join(pin[7:][i:i + 2] for i in range(0, 64, 2)).upper()  # as openssl -fingerprint prints
        run_cli("device", "add", "pinned", "--url", url.replace("127.0.0.1", "localhost"),
                "--token-file", token_file, "--tls-fingerprint", colons)
        run_cli("device", "add", "wrong", "--url", url, "--token-file", token_file, "--tls-fingerprint", "ab" * 32)
        run_cli("device", "add", "untrusted", "--url", url, "--token-file", token_file)
        assert open_device("ca").info()["fingerprint_id"]
        assert open_device("pinned").info()["fingerprint_id"]
        with pytest.raises(MeasurementRejected, match="not the pinned"):
            open_device("wrong").info()
        untrusted = open_device("untrusted")
        untrusted.silent_after_s = 0.5
        with pytest.raises(DeviceUnavailable, match="CERTIFICATE_VERIFY_FAILED"):
            untrusted.info()
        bad = run_cli("device", "add", "x", "--url", url.replace("https", "http"), "--token-file", token_file,
                      "--ca-cert", cert, "--json", check=False)
        assert bad.returncode != 0 and "need an https:// URL" in bad.stdout
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_verify_through_an_agent_gets_the_devices_per_layer_profile(agent, tmp_path):
    from edgeprune.export.onnx_parity import export_onnx
    from edgeprune.models import build_model
    from edgeprune.verify import verify
    from edgeprune.verify.profile import OTHER

    url, token_file, _ = agent
    run_cli("device", "add", "pi", "--url", url, "--token-file", token_file)
    net, shape = build_model("demo_cnn")
    path = tmp_path / "model.onnx"
    export_onnx(net, shape, path)
    quick = MeasureSettings(warmup=1, min_repeats=3, min_duration_s=0.01)
    r = verify("pi", path, "10s", "latency", settings=quick)
    rows = {row["layer"]: row["measured_ms"] for row in r["layers"]}
    assert {"conv1", "conv2", "conv3", "linear", OTHER} <= set(rows)
    assert all(ms > 0 for ms in rows.values())
    with pytest.raises(MeasurementRejected, match="per-node profiling needs runtime onnxruntime"):
        open_device("pi").measure(b"x", "litert", quick, profile=True)
