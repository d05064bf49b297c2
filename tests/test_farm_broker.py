"""Farm pieces against a real redis-server: blobs, JSON-only workers, broker passwords, the optional extra."""
import hashlib
import json
import subprocess
import sys
import time
from importlib.resources import files

import psutil
import pytest
import redis

from conftest import free_port, run_cli
from farm_testlib import beats, start_redis, start_worker, stop, wait_for
from farm_testlib import broker  # noqa: F401  (the pytest fixture)
from edgeprune.measure.devices import MeasurementRejected
from edgeprune.measure.registry import DeviceConfigError, add_farm_device, open_device
from edgeprune.measure.settings import MeasureSettings
from edgeprune_agent.blobs import BlobCache, BlobMissing, blob_key, get_blob, put_blob
from edgeprune_agent.farm import TASK_NAME, FarmError, broker_url, make_celery, queue_name, result_key
from edgeprune_agent.runner import JOB_PROCESS_NAME


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


def test_blob_cache_keeps_the_most_recently_used_blobs_within_its_size():
    cache = BlobCache(max_bytes=10)
    cache.put("a", b"12345")
    cache.put("b", b"6789")
    assert cache.get("a") == b"12345"  # a is now the most recent
    cache.put("c", b"xyz")  # 12 bytes > 10: b, the least recently used, goes
    assert cache.get("b") is None and cache.get("a") == b"12345" and cache.get("c") == b"xyz" and cache.size == 8
    cache.put("big", b"x" * 11)
    assert cache.get("big") is None and cache.size == 8


def test_a_model_crosses_the_broker_once_however_many_jobs_use_it(broker, tmp_path):
    url, client = broker
    procs = {"w1": start_worker(url, "w1", tmp_path)}
    try:
        wait_for(lambda: beats(client).get("w1"), "w1 to beat", procs, tmp_path)
        add_farm_device("lab", url, beats(client)["w1"]["hardware_class"])
        device = open_device("lab")
        device.report = None
        model = (files("edgeprune_agent") / "data" / "reference_conv32_16x16.onnx").read_bytes()

        def traffic(seed: int) -> tuple[int, int]:
            """Bytes into and out of redis-server while the host runs one job of the model."""
            before = client.info("stats")
            device.measure(model, "onnxruntime", MeasureSettings(warmup=seed, min_repeats=1, min_duration_s=0.01))
            after = client.info("stats")
            return tuple(after[k] - before[k] for k in ("total_net_input_bytes", "total_net_output_bytes"))

        first = traffic(1)
        assert min(first) > len(model)  # the host stored the model, the worker fetched it
        again = [traffic(seed) for seed in (2, 3)]  # new jobs (other settings) of the same model
        assert all(max(t) < len(model) / 2 for t in again), (len(model), first, again)  # neither sent it again
        client.delete(blob_key(hashlib.sha256(model).hexdigest()))  # expired: the host stores it again
        assert traffic(4)[0] > len(model)
    finally:
        stop(procs)


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
        never_stored = hashlib.sha256(b"never stored").hexdigest()
        job = {"blob": never_stored, "runtime": "onnxruntime", "settings": MeasureSettings().as_kwargs()}
        make_celery(url, with_results=False).send_task(TASK_NAME, kwargs=job, task_id="no-blob",
                                                       queue=queue_name(class_id))
        meta = wait_for(lambda: client.get(result_key("no-blob")), "the no-blob result", procs, tmp_path)
        assert json.loads(meta)["result"]["error"]["type"] == "BlobMissing"
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


def _tls_files(tmp_path):
    """A private CA and a server certificate for 127.0.0.1, made with openssl."""
    ca_key, ca, key, csr, cert = (tmp_path / n for n in ("ca.key", "ca.pem", "srv.key", "srv.csr", "srv.pem"))
    ext = tmp_path / "san.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1\n")
    for cmd in (["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out", ca, "-days", "1",
                 "-subj", "/CN=farm-test-ca"],
                ["req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=127.0.0.1"],
                ["x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-out", cert,
                 "-days", "1", "-extfile", ext]):
        subprocess.run(["openssl", *map(str, cmd)], check=True, capture_output=True, timeout=60)
    return ca, key, cert


def test_a_worker_and_a_host_talk_over_rediss_with_a_private_ca(tmp_path):
    ca, key, cert = _tls_files(tmp_path)
    port = free_port()
    proc = subprocess.Popen(["redis-server", "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
                             "--save", "", "--appendonly", "no", "--dir", str(tmp_path), "--tls-cert-file", str(cert),
                             "--tls-key-file", str(key), "--tls-ca-cert-file", str(ca), "--tls-auth-clients", "no"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"rediss://127.0.0.1:{port}/0?ssl_cert_reqs=required&ssl_ca_certs={ca}"
    procs = {}
    try:
        client = redis.Redis.from_url(url)
        wait_for(lambda: _pings(client), "the TLS-only redis-server", procs, tmp_path)
        with pytest.raises(redis.ConnectionError):  # no clear text on that port
            redis.Redis(port=port, socket_connect_timeout=5, socket_timeout=5).ping()
        procs["w1"] = start_worker(url, "w1", tmp_path)
        wait_for(lambda: beats(client).get("w1"), "w1 to beat over TLS", procs, tmp_path)
        add_farm_device("lab", url)
        device = open_device("lab")
        device.report = None
        model = (files("edgeprune_agent") / "data" / "reference_conv32_16x16.onnx").read_bytes()
        result = device.measure(model, "onnxruntime", MeasureSettings(warmup=1, min_repeats=3, min_duration_s=0.01))
        assert result.result["farm"]["worker"] == "w1" and result.latency.median > 0
    finally:
        stop(procs)
        proc.terminate()
        proc.wait(timeout=10)


def _pings(client) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


def test_verify_and_device_check_work_unchanged_on_a_farm(broker, tmp_path):
    from edgeprune.export.onnx_parity import export_onnx
    from edgeprune.models import build_model
    from edgeprune.verify import verify
    from helpers_export import save_dir

    url, client = broker
    procs = {"w1": start_worker(url, "w1", tmp_path)}
    try:
        wait_for(lambda: beats(client).get("w1"), "w1 to beat", procs, tmp_path)
        run_cli("device", "add", "lab", "--broker", url)
        check = json.loads(run_cli("device", "check", "lab", "--json").stdout)
        assert check["info"]["farm"]["workers_alive"] == 1 and check["info"]["fingerprint_id"]
        net, shape = build_model("demo_cnn")
        path = save_dir(tmp_path / "art", net, shape) / "model.onnx"
        export_onnx(net, shape, path)
        r = verify("lab", path, "10s", "latency",
                   settings=MeasureSettings(warmup=1, min_repeats=3, min_duration_s=0.01, reference=False))
        assert r["within_budget"] is True and r["measured"] > 0
        assert {"conv1", "conv2", "conv3", "linear"} <= {row["layer"] for row in r["layers"] if row["measured_ms"]}
    finally:
        stop(procs)


def test_a_job_lost_from_the_broker_is_published_again(broker, tmp_path):
    import threading

    url, client = broker
    procs = {"w1": start_worker(url, "w1", tmp_path)}
    try:
        wait_for(lambda: beats(client).get("w1"), "w1 to beat", procs, tmp_path)
        class_id = beats(client)["w1"]["hardware_class"]
        stop(procs)  # no worker: the job waits in the queue
        procs.clear()
        add_farm_device("lab", url, class_id)
        device = open_device("lab")
        device.report = None
        model = (files("edgeprune_agent") / "data" / "reference_conv32_16x16.onnx").read_bytes()
        out: dict = {}
        host = threading.Thread(target=lambda: out.update(device.measure(
            model, "onnxruntime", MeasureSettings(warmup=1, min_repeats=3, min_duration_s=0.01), job_key="p1").result))
        host.start()
        wait_for(lambda: client.llen(queue_name(class_id)) == 1, "the job to be queued", procs, tmp_path)
        client.delete(queue_name(class_id))  # the broker loses it (a purge, a restart without persistence)
        procs["w2"] = start_worker(url, "w2", tmp_path)
        host.join(timeout=120)
        assert out["farm"]["worker"] == "w2" and out["farm"]["attempt"] == 1
    finally:
        stop(procs)


def test_jobs_go_only_to_workers_of_the_chosen_hardware_class(broker, tmp_path):
    url, client = broker
    fake = tmp_path / "other-board"
    (fake / "proc").mkdir(parents=True)
    (fake / "proc" / "cpuinfo").write_text("model name\t: Farm Test CPU\n")
    procs = {"here": start_worker(url, "here", tmp_path),
             "other": start_worker(url, "other", tmp_path, "--sysfs-root", str(fake))}
    try:
        wait_for(lambda: {"here", "other"} <= set(beats(client)), "both workers to beat", procs, tmp_path)
        classes = {n: b["hardware_class"] for n, b in beats(client).items()}
        assert classes["here"] != classes["other"]
        with pytest.raises(DeviceConfigError, match="pass --hardware-class") as refused:
            add_farm_device("lab", url)
        assert classes["here"] in str(refused.value) and classes["other"] in str(refused.value)
        add_farm_device("lab", url, classes["other"])
        device = open_device("lab")
        device.report = None
        assert device.info()["cpu_model"] == "Farm Test CPU"
        model = (files("edgeprune_agent") / "data" / "reference_conv32_16x16.onnx").read_bytes()
        fast = MeasureSettings(warmup=1, min_repeats=3, min_duration_s=0.01)
        workers = {device.measure(model, "onnxruntime", fast, job_key=f"p{i}").result["farm"]["worker"]
                   for i in range(4)}
        assert workers == {"other"}
    finally:
        stop(procs)


def _waiting_job_processes(worker: subprocess.Popen, count: int) -> list:
    """The worker's live job processes, once the same ``count`` of them have stood for 0.2 s."""
    deadline, last = time.monotonic() + 30, None
    while True:
        live = []
        for proc in psutil.Process(worker.pid).children(recursive=True):
            try:
                if proc.name() == JOB_PROCESS_NAME and proc.status() != psutil.STATUS_ZOMBIE:
                    live.append(proc)
            except psutil.NoSuchProcess:
                continue
        pids = sorted(p.pid for p in live)
        if len(pids) == count and pids == last:
            return live
        assert time.monotonic() < deadline, f"{len(pids)} job processes under the worker, expected {count}"
        last = pids
        time.sleep(0.2)


def test_a_worker_starts_each_next_job_process_once_the_result_is_stored_and_leaves_none(broker, tmp_path):
    url, client = broker
    procs = {"w1": start_worker(url, "w1", tmp_path)}
    try:
        wait_for(lambda: beats(client).get("w1"), "w1 to beat", procs, tmp_path)
        (first,) = _waiting_job_processes(procs["w1"], 1)  # started with the worker
        add_farm_device("lab", url, beats(client)["w1"]["hardware_class"])
        device = open_device("lab")
        device.report = None
        model = (files("edgeprune_agent") / "data" / "reference_conv32_16x16.onnx").read_bytes()
        device.measure(model, "onnxruntime", MeasureSettings(warmup=1, min_repeats=3, min_duration_s=0.01))
        assert not psutil.wait_procs([first], timeout=10)[1], "the job's process outlived its job"
        (second,) = _waiting_job_processes(procs["w1"], 1)  # the next job's, started after the result
        assert second.pid != first.pid
    finally:
        stop(procs)
    assert not psutil.wait_procs([second], timeout=10)[1], "a waiting job process outlived its worker"
