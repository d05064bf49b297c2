"""Device-farm protocol shared by workers and hosts: Celery app, queue names, Redis keys, broker URLs."""
from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any, Dict, List, Optional
from urllib.parse import quote, urlsplit, urlunsplit

from .errors import AgentError

TASK_NAME = "edgeprune.measure"
PREFIX = "edgeprune:farm:"
RESULT_TTL_S = 7 * 24 * 3600  # results, job claims and the last-seen class info live this long
DEFAULT_VISIBILITY_S = 30.0  # a killed worker's job is redelivered after this (running jobs keep extending it)
_CLASS_RE = re.compile(r"^[0-9a-f]{16}\.[a-z0-9_]+-[A-Za-z0-9.+_-]+$")


class FarmError(AgentError):
    """The broker is unusable or a farm setting is wrong."""


def hardware_class(fingerprint_id: str, runtime: str, runtime_version: str) -> str:
    """Class id: devices that share it give interchangeable measurements (same table point keys)."""
    return f"{fingerprint_id}.{runtime}-{runtime_version}"


def check_class(class_id: str) -> str:
    """The class id unchanged, or FarmError saying what one looks like."""
    if not _CLASS_RE.match(class_id or ""):
        raise FarmError(f"hardware class {class_id!r} is not FINGERPRINT.RUNTIME-VERSION "
                        "(e.g. 3f2a9c0d1e4b5a67.onnxruntime-1.20.1; see `edgeprune device add --broker URL`)")
    return class_id


def queue_name(class_id: str) -> str:
    """The Celery queue that workers of one hardware class consume."""
    return f"edgeprune.{class_id}"


def broker_url(url: str, password_file: Optional[str] = None) -> str:
    """redis:// or rediss:// URL, with the password from a file put in (it is never stored in a registry)."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss"):
        raise FarmError(f"broker URL must start with redis:// or rediss://, got {url!r}")
    if parts.scheme == "rediss" and "ssl_cert_reqs" not in parts.query:
        raise FarmError("a rediss:// URL needs ?ssl_cert_reqs=required (and ssl_ca_certs=/path/ca.pem for a "
                        "private CA): the broker's certificate must be checked")
    if not password_file:
        return url
    try:
        password = Path(password_file).expanduser().read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise FarmError(f"cannot read broker password file {password_file}: {exc.strerror}") from exc
    if not password:
        raise FarmError(f"broker password file {password_file} is empty")
    user = quote(parts.username or "", safe="")
    host = parts.hostname or "localhost"
    netloc = f"{user}:{quote(password, safe='')}@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def redacted(url: str) -> str:
    """The URL with any password replaced by ***, for messages."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    netloc = f"{parts.username or ''}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def make_celery(url: str, with_results: bool, visibility_s: float = DEFAULT_VISIBILITY_S):
    """Celery app on a Redis broker: JSON only (a worker never unpickles), late ack, requeue on worker loss."""
    from celery import Celery

    app = Celery("edgeprune-farm", broker=url, backend=url if with_results else None)
    app.conf.update(
        task_serializer="json", result_serializer="json", accept_content=["json"],
        result_accept_content=["json"], task_acks_late=True, task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1, result_expires=RESULT_TTL_S, task_track_started=False,
        broker_connection_retry_on_startup=True, worker_hijack_root_logger=False,
        # no remote-control commands through the broker (shutdown, rate limits, ...): it carries only jobs
        worker_enable_remote_control=False, worker_disable_rate_limits=True,
        broker_transport_options={"visibility_timeout": visibility_s, "unacked_restore_throttle": 1,
                                  "unacked_restore_interval": max(1, int(visibility_s / 4))},
    )
    return app


def redis_client(url: str):
    """redis-py client for blobs, heartbeats and claims (the same server as the broker)."""
    import redis

    return redis.Redis.from_url(url, socket_connect_timeout=10, health_check_interval=30)


def result_key(task_id: str) -> str:
    """Where Celery's Redis backend keeps (and publishes) a task's result."""
    return f"celery-task-meta-{task_id}"


def worker_key(class_id: str, name: str) -> str:
    return f"{PREFIX}worker:{class_id}:{name}"


def info_key(class_id: str) -> str:
    return f"{PREFIX}class:{class_id}:info"


def alive_workers(client, class_id: Optional[str] = None) -> List[Dict[str, Any]]:
    """Heartbeats of the workers alive now (of one class, or all), oldest first."""
    pattern = worker_key(class_id or "*", "*")
    beats = []
    for key in client.scan_iter(match=pattern, count=500):
        raw = client.get(key)
        if raw:
            beats.append(json.loads(raw))
    return sorted(beats, key=lambda b: (b.get("started", 0), b.get("name", "")))


def heartbeat(client, class_id: str, name: str, state: Dict[str, Any], ttl_s: float) -> None:
    """Publish one worker heartbeat that vanishes ttl_s after the worker stops sending them."""
    beat = {"name": name, "hardware_class": class_id, "at": time.time(), **state}
    client.set(worker_key(class_id, name), json.dumps(beat), px=int(ttl_s * 1000))
