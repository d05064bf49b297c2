"""A device farm as one device: jobs go through a Celery/Redis broker to whichever worker of the class is free."""
from __future__ import annotations

import hashlib
import json
import sys
import threading
import time
import uuid
from typing import Callable

from edgeprune.measure.devices import DeviceUnavailable, MeasurementRejected, parse_result
from edgeprune.measure.settings import MeasureSettings
from edgeprune.measurement import Measurement

JOB_PREFIX = "edgeprune:farm:job:"
LOST_AFTER = 3  # one-second checks in a row with nothing queued, running or unacked: a job still unanswered is lost


def _farm():
    """The agent's farm protocol (the [farm] extra); imported late so the host runs without Celery otherwise."""
    try:
        import celery  # noqa: F401
        from edgeprune_agent import blobs, farm
    except ImportError as exc:
        raise DeviceUnavailable("farm devices need Celery and redis: pip install 'edgeprune-agent[farm]'") from exc
    return farm, blobs


def _error(meta: dict) -> dict:
    """The worker's refusal ({type, detail}) inside a result meta, or {}."""
    result = meta.get("result")
    return (result.get("error") or {}) if isinstance(result, dict) else {}


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def job_id(class_id: str, job_key: str | None, runtime: str, settings: MeasureSettings, profile: bool) -> str:
    """The same point gives the same task id on every host and after a restart; unkeyed jobs get a fresh one."""
    if job_key is None:
        return str(uuid.uuid4())
    ident = json.dumps([class_id, job_key, runtime, settings.as_kwargs(), profile], sort_keys=True)
    return str(uuid.UUID(bytes=hashlib.sha256(ident.encode()).digest()[:16]))


def discover_classes(broker: str, password_file: str | None = None) -> dict[str, list[str]]:
    """Hardware classes with live workers on a broker, from their heartbeats: class id -> worker names."""
    from redis.exceptions import RedisError

    farm, _ = _farm()
    client = farm.redis_client(farm.broker_url(broker, password_file))
    classes: dict[str, list[str]] = {}
    try:
        for beat in farm.alive_workers(client):
            classes.setdefault(beat["hardware_class"], []).append(beat["name"])
    except RedisError as exc:
        raise DeviceUnavailable(f"cannot reach the broker at {farm.redacted(broker)}: {exc}") from exc
    return classes


class FarmDevice:
    """Every worker of one hardware class on one broker; `slots` jobs are in flight at once."""

    in_process = False
    keyed = True  # the fleet runner passes each point's key, so hosts and restarts share jobs

    def __init__(self, name: str, broker: str, hardware_class: str, password_file: str | None = None,
                 slots: int | None = None, no_worker_timeout_s: float = 600.0,
                 blob_ttl_s: float | None = None, report: Callable[[str], None] | None = _stderr,
                 report_every_s: float = 2.0):
        farm, blobs = _farm()
        self.name, self.class_id = name, farm.check_class(hardware_class)
        self.runtime = hardware_class.split(".", 1)[1].split("-", 1)[0]
        self._farm, self._blobs = farm, blobs
        self._url = farm.broker_url(broker, password_file)
        self._client = farm.redis_client(self._url)
        self._publisher = farm.make_celery(self._url, with_results=False)
        self._queue = farm.queue_name(self.class_id)
        self._blob_ttl = blob_ttl_s or blobs.DEFAULT_BLOB_TTL_S
        self.no_worker_timeout_s = no_worker_timeout_s
        self.report, self._report_every = report, report_every_s
        self._lock, self._local = threading.Lock(), threading.local()
        self._last_report, self._last_line, self._last_alive = 0.0, "", time.monotonic()
        self.done = self.requeued = 0
        self.slots = slots or max(4, 2 * len(self._call(farm.alive_workers, self._client, self.class_id)))

    def _call(self, fn, *args, **kw):
        """Run a broker call; a broker that is gone is DeviceUnavailable (resumable), not a crash."""
        from redis.exceptions import RedisError

        try:
            return fn(*args, **kw)
        except (RedisError, OSError) as exc:
            raise DeviceUnavailable(f"farm {self.name!r}: broker {self._farm.redacted(self._url)} failed: "
                                    f"{exc}") from exc

    def info(self) -> dict:
        """The class's device description (last written by one of its workers) plus the farm's status."""
        raw = self._call(self._client.get, self._farm.info_key(self.class_id))
        if raw is None:
            raise DeviceUnavailable(f"farm {self.name!r}: no worker of class {self.class_id} has connected to the "
                                    "broker yet; start one on a device: edgeprune-agent worker --broker URL")
        return {**json.loads(raw), "farm": self.status()}

    def status(self) -> dict:
        """Workers alive, jobs queued in the broker, running on a worker, done for this host, and messages taken
        but not acknowledged (running, or a dead worker's waiting for redelivery)."""
        beats = self._call(self._farm.alive_workers, self._client, self.class_id)
        if beats:
            self._last_alive = time.monotonic()
        return {"workers_alive": len(beats), "queued": self._call(self._client.llen, self._queue),
                "running": sum(1 for b in beats if b.get("busy")), "done": self.done,
                "unacked": self._call(self._client.hlen, "unacked")}

    def measure(self, model_bytes: bytes, runtime: str, settings: MeasureSettings, profile: bool = False,
                job_key: str | None = None) -> Measurement:
        """Measure through the farm; a point another host (or an earlier run) already sent is waited for."""
        if runtime != self.runtime:
            raise MeasurementRejected(f"farm {self.name!r} serves {self.runtime} (class {self.class_id}), "
                                      f"not {runtime}")
        task_id = job_id(self.class_id, job_key, runtime, settings, profile)
        kwargs = {"runtime": runtime, "settings": settings.as_kwargs(), "profile": profile}
        meta = self._run(task_id, kwargs, model_bytes)
        if _error(meta).get("type") == "BlobMissing":  # expired before a worker got to it: store it, send again
            self._forget(task_id)
            meta = self._run(task_id, kwargs, model_bytes)
        result = meta.get("result")
        if meta.get("status") == "SUCCESS" and not _error(meta):
            with self._lock:
                self.done += 1
                self.requeued += int(result.get("farm", {}).get("attempt", 1) > 1)
            self._maybe_report()
            return parse_result(self.name, result)
        self._forget(task_id)  # a refused job is sent afresh next time, not answered from the cache
        error = _error(meta) or {"type": meta.get("status"), "detail": f"{(result or {}).get('exc_type')}: "
                                                                      f"{(result or {}).get('exc_message')}"}
        raise MeasurementRejected(f"farm {self.name!r} refused the job ({error['type']}: {error['detail']})")

    def _run(self, task_id: str, kwargs: dict, model_bytes: bytes) -> dict:
        """The task's result meta: from the backend if present, else after publishing it (once, by anyone)."""
        key, claim = self._farm.result_key(task_id), JOB_PREFIX + task_id
        pubsub = self._pubsub()
        self._call(pubsub.subscribe, key)  # before publishing, so the backend's publish cannot be missed
        try:
            meta = None
            while meta is None:
                meta = self._publish_once(task_id, kwargs, model_bytes, key, claim)
                if meta is None:
                    meta = self._wait(pubsub, key)
                if meta is None:  # the job is nowhere (queue purged, broker data lost): publish it again
                    self._call(self._client.delete, claim)
            return meta
        finally:
            self._call(pubsub.unsubscribe, key)

    def _publish_once(self, task_id: str, kwargs: dict, model_bytes: bytes, key: str, claim: str) -> dict | None:
        """Publish the job unless someone already did; returns the result meta when it is already there."""
        kwargs["blob"] = sha = self._blobs.blob_sha(model_bytes)
        pipe = self._blobs.renew_blob(self._client.pipeline(transaction=False), sha, self._blob_ttl)
        # claimed as sent before it is: one round trip less per job; a host that dies in between leaves a job that
        # is nowhere, which a waiting host's idle checks find (LOST_AFTER) and publish again
        pipe.set(claim, "sent", nx=True, ex=self._farm.RESULT_TTL_S).get(key)
        renewed, claimed, raw = self._call(pipe.execute)
        if raw is not None:
            return json.loads(raw)
        if claimed and not renewed:  # the model's first job here (or its blob expired): send the bytes once
            self._call(self._blobs.put_blob, self._client, model_bytes, self._blob_ttl)
        if claimed:  # the reprs are for Celery's logs only: skip walking the kwargs for them
            self._call(self._publisher.send_task, self._farm.TASK_NAME, kwargs=kwargs, task_id=task_id,
                       queue=self._queue, argsrepr="()", kwargsrepr=f"{{blob: {sha[:12]}}}")
        return None  # sent now, or by another host or an earlier run of this one: wait for its result

    def _forget(self, task_id: str) -> None:
        self._call(self._client.delete, JOB_PREFIX + task_id, self._farm.result_key(task_id))

    def _pubsub(self):
        """One pub/sub connection per fleet thread, reused across its jobs."""
        if getattr(self._local, "pubsub", None) is None:
            self._local.pubsub = self._client.pubsub(ignore_subscribe_messages=True)
        return self._local.pubsub

    def _wait(self, pubsub, key: str) -> dict | None:
        """The result meta once the backend publishes it (the backend itself is read every second); None when
        the farm has been idle for LOST_AFTER checks in a row without producing it: the job is gone."""
        idle = 0
        while idle < LOST_AFTER:
            check_at = time.monotonic() + 1.0
            while (left := check_at - time.monotonic()) > 0:
                # None also comes at once for a (un)subscribe confirmation: wait on, don't check the farm per job
                message = self._call(pubsub.get_message, timeout=left)
                if message is not None and message["channel"].decode() == key:
                    return json.loads(message["data"])
            raw = self._call(self._client.get, key)
            if raw is not None:
                return json.loads(raw)
            s = self.status()
            idle = idle + 1 if s["queued"] == s["running"] == s["unacked"] == 0 else 0
            self._maybe_report()
            if time.monotonic() - self._last_alive > self.no_worker_timeout_s:
                raise DeviceUnavailable(f"farm {self.name!r}: no worker of class {self.class_id} alive for "
                                        f"{self.no_worker_timeout_s:.0f} s; start one: edgeprune-agent worker "
                                        "--broker URL (calibrate resumes)")
        return None

    def _maybe_report(self) -> None:
        """Progress line (workers alive, queued / running / done) when it changed, at most every report_every_s."""
        now = time.monotonic()
        with self._lock:
            if self.report is None or now - self._last_report < self._report_every:  # no one to tell: no status
                return
            self._last_report = now
        s = self.status()
        line = (f"farm {self.name}: {s['workers_alive']} worker(s) alive · queued {s['queued']} · "
                f"running {s['running']} · done {s['done']}")
        if line != self._last_line:
            self._last_line = line
            self.report(line)
