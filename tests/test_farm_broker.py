"""Farm pieces against a real redis-server: blobs, JSON-only workers, broker passwords, the optional extra."""
import subprocess
import sys
import time

import pytest
import redis

from conftest import run_cli
from farm_testlib import beats, start_redis, start_worker, stop, wait_for
from edgeprune.measure.devices import MeasurementRejected
from edgeprune.measure.registry import DeviceConfigError, add_farm_device, open_device
from edgeprune.measure.settings import MeasureSettings
from edgeprune_agent.blobs import BlobMissing, blob_key, get_blob, put_blob
from edgeprune_agent.farm import TASK_NAME, FarmError, broker_url, make_celery, queue_name, result_key


@pytest.fixture
def broker(tmp_path):
    proc, url = start_redis(tmp_path)
    yield url, redis.Redis.from_url(url)
    proc.terminate()
    proc.wait(timeout=10)


def test_blobs_are_stored_once_under_their_sha256_with_a_ttl(broker):
    _, client = broker
    sha = put_blob(client, b"model-bytes", ttl_s=60)
    assert put_blob(client, b"model-bytes", ttl_s=120) == sha
    assert list(client.scan_iter(match="edgeprune:farm:blob:*")) == [blob_key(sha).encode()]
    assert 60 < client.ttl(blob_key(sha)) <= 120  # storing again renews the TTL, not the bytes
    assert get_blob(client, sha) == b"model-bytes"
    client.set(blob_key(sha), b"tampered")
    with pytest.raises(BlobMissing, match="corrupt"):
        get_blob(client, sha)
    client.delete(blob_key(sha))
    with pytest.raises(BlobMissing, match="expired"):
        get_blob(client, sha)
    with pytest.raises(ValueError):
        get_blob(client, "../etc/passwd")


def test_worker_refuses_pickled_messages_and_bad_models(broker, tmp_path):
    url, client = broker
    procs = {"w1": start_worker(url, "w1", tmp_path)}
    try:
        wait_for(lambda: beats(client).get("w1"), "w1 to beat", procs, tmp_path)
        class_id = beats(client)["w1"]["hardware_class"]
        sender = make_celery(url, with_results=False)
        sender.conf.update(task_serializer="pickle", accept_content=["pickle", "json"])
        blob = put_blob(client, b"x")
        sender.send_task(TASK_NAME, kwargs={"blob": blob, "runtime": "onnxruntime", "settings": {}},
                         task_id="pickled-job", queue=queue_name(class_id))
        add_farm_device("lab", url, class_id)
        device = open_device("lab")
        device.report = None
        # the queue is FIFO: once this JSON job is answered, the pickled one ahead of it was dealt with
        with pytest.raises(MeasurementRejected, match="ModelInvalid"):
            device.measure(b"not an onnx model", "onnxruntime", MeasureSettings(min_duration_s=0.01))
        assert client.get(result_key("pickled-job")) is None
        assert client.get("edgeprune:farm:attempts:pickled-job") is None  # never ran
        assert procs["w1"].poll() is None
        assert "disallowed" in (tmp_path / "w1.log").read_text().lower()
    finally:
        stop(procs)


def test_broker_password_comes_from_a_file_and_never_sits_in_the_registry(tmp_path):
    proc, url = start_redis(tmp_path, "--requirepass", "s3cret/pw")
    secret, wrong = tmp_path / "broker.pw", tmp_path / "wrong.pw"
    secret.write_text("s3cret/pw\n")
    wrong.write_text("nope\n")
    procs = {}
    try:
        client = redis.Redis.from_url(broker_url(url, str(secret)))
        bad = subprocess.run([sys.executable, "-m", "edgeprune_agent", "worker", "--broker", url, "--password-file",
                              str(wrong), "--sensor", "estimate"], capture_output=True, text=True, timeout=120)
        assert bad.returncode == 2 and "cannot reach the broker" in bad.stderr and "nope" not in bad.stderr
        procs["w1"] = start_worker(url, "w1", tmp_path, "--password-file", str(secret))
        wait_for(lambda: beats(client).get("w1"), "w1 to beat", procs, tmp_path)
        with pytest.raises(DeviceConfigError, match="password-file"):
            add_farm_device("lab", url.replace("redis://", "redis://:s3cret@"))
        entry = add_farm_device("lab", url, password_file=secret)
        assert "s3cret" not in str(entry) and entry["password_file"] == str(secret)
        assert open_device("lab").info()["farm"]["workers_alive"] == 1
        done = run_cli("device", "list")
        listed = done.stdout + done.stderr
        assert "farm" in listed and "s3cret" not in listed
    finally:
        stop(procs)
        proc.terminate()
        proc.wait(timeout=10)


def test_rediss_needs_certificate_checking_and_bad_urls_get_one_line():
    with pytest.raises(FarmError, match="ssl_cert_reqs"):
        broker_url("rediss://farm.lab:6380/0")
    assert broker_url("rediss://farm.lab:6380/0?ssl_cert_reqs=required").startswith("rediss://")
    with pytest.raises(FarmError, match="redis:// or rediss://"):
        broker_url("amqp://farm.lab")
    with pytest.raises(DeviceConfigError, match="FINGERPRINT.RUNTIME-VERSION"):
        add_farm_device("lab", "redis://127.0.0.1:1/0", "not-a-class")


def test_the_agent_needs_celery_only_for_the_worker():
    code = ("import sys, edgeprune_agent.cli as c, edgeprune.measure.registry; c._build_parser(); "
            "assert not {'celery', 'redis', 'kombu'} & set(sys.modules), sorted(sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
