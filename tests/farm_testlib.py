"""Real redis-server and `edgeprune-agent worker` processes on loopback for the farm tests."""
from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import free_port

VISIBILITY_S = 3  # short, so a SIGKILLed worker's job comes back within seconds


def start_redis(tmp: Path, *extra: str) -> tuple[subprocess.Popen, str]:
    """A throwaway redis-server on a free loopback port (no persistence); returns (process, redis:// URL)."""
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is not installed: apt-get install -y redis-server (.ci/run does this)")
    port = free_port()
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(tmp), *extra],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import redis

    client = redis.Redis(port=port, password=_password(extra))
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if client.ping():
                return proc, f"redis://127.0.0.1:{port}/0"
        except redis.ConnectionError:
            time.sleep(0.02)
    proc.kill()
    pytest.fail("redis-server did not start")


def _password(extra: tuple[str, ...]) -> str | None:
    return extra[extra.index("--requirepass") + 1] if "--requirepass" in extra else None


def start_worker(url: str, name: str, log_dir: Path, *extra: str) -> subprocess.Popen:
    """A real worker process; its stderr goes to log_dir/name.log."""
    log = open(log_dir / f"{name}.log", "wb")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.Popen([sys.executable, "-m", "edgeprune_agent", "worker", "--broker", url, "--name", name,
                             "--sensor", "estimate", "--visibility-timeout", str(VISIBILITY_S), *extra],
                            stdout=subprocess.DEVNULL, stderr=log, env=env)


def beats(client) -> dict[str, dict]:
    """Live worker heartbeats by worker name."""
    from edgeprune_agent.farm import alive_workers

    return {b["name"]: b for b in alive_workers(client)}


def wait_for(condition, what: str, procs: dict, log_dir: Path, timeout: float = 120.0):
    """Poll condition() until it is truthy; fail with the workers' logs if it never is or a worker died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        dead = [n for n, p in procs.items() if p.poll() not in (None, -signal.SIGKILL)]
        if dead:
            break
        time.sleep(0.02)
    logs = "\n".join(f"--- {n}\n{(log_dir / f'{n}.log').read_text()[-1500:]}" for n in procs
                     if (log_dir / f"{n}.log").exists())
    pytest.fail(f"timed out waiting for {what}\n{logs}")


def stop(procs: dict) -> None:
    """SIGTERM (warm shutdown) every live worker and reap it."""
    for proc in procs.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs.values():
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def table_results(path: Path) -> list[tuple[str, dict]]:
    """(point key, stored result) for every row of a latency table."""
    db = sqlite3.connect(path)
    rows = db.execute("SELECT point_key, result_json FROM layer_measurements").fetchall()
    rows += db.execute("SELECT point_key, result_json FROM network_measurements").fetchall()
    db.close()
    return [(k, json.loads(r)) for k, r in rows]


def attempts(client) -> dict[str, int]:
    """How many times a worker started each task id."""
    prefix = "edgeprune:farm:attempts:"
    return {k.decode()[len(prefix):]: int(client.get(k)) for k in client.scan_iter(match=prefix + "*")}


@pytest.fixture
def broker(tmp_path):
    """A fresh redis-server on loopback; yields (url, client)."""
    import redis

    proc, url = start_redis(tmp_path)
    yield url, redis.Redis.from_url(url)
    proc.terminate()
    proc.wait(timeout=10)
