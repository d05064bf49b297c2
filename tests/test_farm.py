"""Device farm end to end: a real redis-server, real worker processes, the real calibration loop; no broker mocks."""
import json
import signal
import subprocess
import sys
import time

import pytest

from conftest import run_cli
from farm_testlib import attempts, beats, start_worker, stop, table_results, wait_for
from farm_testlib import broker  # noqa: F401  (the pytest fixture)
from edgeprune.measure.calibrate import calibrate
from edgeprune.measure.registry import add_farm_device, open_device
from edgeprune.measure.settings import MeasureSettings
from edgeprune.models import build_model
from edgeprune.models.layer_space import build_layer_space
from edgeprune.tables.store import LatencyTable

# 0.15 s per point: long enough to SIGKILL a worker mid-job, short enough for the default run
SETTINGS = MeasureSettings(warmup=1, min_repeats=3, min_duration_s=0.15, max_duration_s=2.0)


@pytest.fixture
def workers(broker, tmp_path):
    """{name: Popen} of the test's workers, stopped at the end."""
    procs: dict = {}
    yield procs
    stop(procs)


def _start(names, url, procs, tmp_path, client):
    for name in names:
        procs[name] = start_worker(url, name, tmp_path)
    wait_for(lambda: set(names) <= set(beats(client)), f"workers {names} to beat", procs, tmp_path)


def test_farm_calibrates_through_a_killed_worker_and_a_late_join(broker, workers, tmp_path):
    url, client = broker
    _start(["w1", "w2"], url, workers, tmp_path, client)
    entry = add_farm_device("lab", url)  # the hardware class comes from the heartbeats
    device = open_device("lab")
    lines: list[str] = []
    device.report, device._report_every = lines.append, 0.2
    assert device.info()["farm"]["workers_alive"] == 2
    model, shape = build_model("demo_cnn")
    space = build_layer_space(model, shape)
    killed: dict = {}

    def kill_w1_then_add_w3(phase, done, total, stored):
        if killed:
            return
        # SIGKILL w1 while it runs a job (started < 0.1 s ago, so >= 0.05 s of timing are left), then let w3 join
        busy = wait_for(lambda: _just_started(beats(client).get("w1", {})), "w1 to start a job", workers, tmp_path)
        workers["w1"].send_signal(signal.SIGKILL)
        killed["task"] = busy
        _start(["w3"], url, workers, tmp_path, client)

    path = tmp_path / "farm.sqlite"
    with LatencyTable(path) as table:
        result = calibrate(device, "demo_cnn", model, space, table, settings=SETTINGS, points=6,
                           network_variants=3, progress=kill_w1_then_add_w3)
    assert result.fingerprint_id == entry["hardware_class"].split(".")[0]
    assert result.points_measured == result.points_planned and result.network_variants_measured == 3
    rows = table_results(path)
    assert len(rows) == len({k for k, _ in rows}) == result.points_planned + 3  # nothing lost, nothing twice
    tries = attempts(client)
    assert tries[killed["task"]] == 2  # the killed job was redelivered and measured again, by another worker
    assert sum(tries.values()) == len(rows) + 1
    by = {r["farm"]["worker"] for _, r in rows}
    assert "w3" in by and "w2" in by
    assert device.requeued == 1 and device.done == len(rows)
    assert any("worker(s) alive" in line and "queued" in line and "running" in line for line in lines)


@pytest.mark.slow
def test_two_hosts_calibrate_the_same_class_at_once_and_share_every_point(broker, workers, tmp_path):
    url, client = broker
    _start(["w1", "w2", "w3"], url, workers, tmp_path, client)
    run_cli("device", "add", "lab", "--broker", url)  # the class is discovered from the heartbeats
    args = ["calibrate", "--device", "lab", "--model", "demo_cnn", "--points", "6", "--network-variants", "3",
            "--warmup", "1", "--min-repeats", "3", "--min-duration", "0.25", "--json"]
    hosts = {n: subprocess.Popen([sys.executable, "-m", "edgeprune.cli.main", *args, "--table",
                                  str(tmp_path / f"{n}.sqlite")], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True) for n in ("host-a", "host-b")}
    outs = {n: p.communicate(timeout=240) for n, p in hosts.items()}
    for n, p in hosts.items():
        assert p.returncode == 0, outs[n][1]
    summaries = {n: json.loads(out) for n, (out, _) in outs.items()}
    a, b = (table_results(tmp_path / f"{n}.sqlite") for n in hosts)
    for s in summaries.values():
        assert s["points_measured"] == s["points_planned"] and s["network_variants_measured"] == 3
    assert len(a) == summaries["host-a"]["points_planned"] + 3
    assert dict(a) == dict(b)  # each point's one measurement, stored by both hosts
    assert sorted(attempts(client).values()) == [1] * len(a)  # no point measured twice
    assert "worker(s) alive" in outs["host-a"][1] + outs["host-b"][1]  # progress on stderr


@pytest.mark.slow
def test_calibrate_resumes_after_the_host_is_killed_without_measuring_a_point_twice(broker, workers, tmp_path):
    url, client = broker
    _start(["w1", "w2"], url, workers, tmp_path, client)
    run_cli("device", "add", "lab", "--broker", url)
    args = [sys.executable, "-m", "edgeprune.cli.main", "calibrate", "--device", "lab", "--model", "demo_cnn",
            "--points", "8", "--network-variants", "3", "--warmup", "1", "--min-repeats", "3",
            "--min-duration", "0.2", "--table", str(tmp_path / "t.sqlite"), "--json"]
    first = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # kill the host while jobs it sent are still queued in the broker and some are done
    wait_for(lambda: len(attempts(client)) >= 3 and client.llen(_queue(client)) > 0, "jobs in flight",
             {**workers, "host": first}, tmp_path)
    first.send_signal(signal.SIGKILL)
    first.wait()
    sent_before = len(list(client.scan_iter(match="edgeprune:farm:job:*")))
    summary = json.loads(run_cli(*args[3:]).stdout)
    rows = table_results(tmp_path / "t.sqlite")
    assert summary["points_measured"] + summary["points_skipped"] == summary["points_planned"]
    assert len(rows) == len({k for k, _ in rows}) == summary["points_planned"] + 3
    tries = attempts(client)
    assert sorted(tries.values()) == [1] * len(rows)  # the killed host's jobs were picked up, not redone
    assert sent_before > 0 and len(tries) == len(rows)


def _just_started(beat: dict) -> str | None:
    """The task id a worker started less than 0.1 s ago, if any."""
    return beat.get("busy") if beat.get("busy") and time.time() - beat["busy_since"] < 0.1 else None


def _queue(client):
    from edgeprune_agent.farm import queue_name

    (class_id,) = {b["hardware_class"] for b in beats(client).values()}
    return queue_name(class_id)
