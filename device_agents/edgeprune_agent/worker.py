"""`edgeprune-agent worker`: pull measurement jobs of this device's hardware class from a Celery/Redis farm."""
from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Dict, Iterator, Optional

from .blobs import BlobCache, blob_key, check_blob
from .errors import AgentError
from .farm import (DEFAULT_VISIBILITY_S, PREFIX, RESULT_TTL_S, TASK_NAME, FarmError, broker_url, hardware_class,
                   heartbeat, info_key, make_celery, queue_name, redacted, redis_client, worker_key)

COALESCE_S = 0.02
SETTING_NAMES = ("threads", "warmup", "min_repeats", "min_duration_s", "max_duration_s", "reference")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of the `worker` subcommand (the device options are added by cli.py)."""
    parser.add_argument("--broker", required=True,
                        help="redis://HOST:6379/0 or rediss://HOST:6380/0?ssl_cert_reqs=required&ssl_ca_certs=CA")
    parser.add_argument("--password-file", default=None, help="file holding the broker password (kept out of ps)")
    parser.add_argument("--runtime", default="onnxruntime", help="runtime whose hardware class to serve")
    parser.add_argument("--name", default=None, help="worker name in heartbeats (default: HOSTNAME-PID)")
    parser.add_argument("--visibility-timeout", type=float, default=DEFAULT_VISIBILITY_S,
                        help="seconds after which a dead worker's job is handed to another worker")


@dataclass
class WorkerContext:
    """What every job on this worker shares: device, sensor, broker client and the busy state."""

    name: str
    runtime: str
    class_id: str
    client: Any
    sensor: Any
    sysfs_root: str
    bin_dir: Optional[str]
    energy_protocol: Any
    sensor_spec: Dict[str, Any]  # open_sensor's arguments, for the job process
    energy_s: float  # time the energy protocol adds to every job's deadline
    busy: Optional[Dict[str, Any]] = None
    jobs_done: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    on_change: Optional[Callable[[], None]] = None  # wakes the heartbeat, so hosts see running jobs at once
    blobs: BlobCache = field(default_factory=BlobCache)  # model blobs already fetched, by SHA-256

    @contextmanager
    def running(self, task_id: str, delivery_tag: Optional[str]) -> Iterator[None]:
        """Mark the worker busy with one job for the heartbeats."""
        with self.lock:
            self.busy = {"task_id": task_id, "delivery_tag": delivery_tag, "since": time.time()}
        self._changed()
        try:
            yield
        finally:
            with self.lock:
                self.busy, self.jobs_done = None, self.jobs_done + 1
            self._changed()

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change()


def run_measurement(model_bytes: bytes, params: Dict[str, Any], ctx: WorkerContext) -> Dict[str, Any]:
    """Measure one job as the HTTP agent does: in a child process killed at the job's deadline."""
    from .runner import job_deadline_s, run_measurement as run_with_deadline

    deadline = job_deadline_s(params["max_duration_s"], ctx.energy_s)
    # the next job's process starts once the result is stored (run_worker), not while it is being returned
    return run_with_deadline(model_bytes, params, deadline, sensor=ctx.sensor_spec, start_next=False)


def job_params(runtime: str, settings: Dict[str, Any], profile: bool) -> Dict[str, Any]:
    """measure_model's keyword arguments from a message; unknown or out-of-range settings are refused."""
    from .measure import check_profile, validate_settings

    if not isinstance(settings, dict) or set(settings) != set(SETTING_NAMES):
        raise ValueError(f"job settings must be a dict with exactly the keys {SETTING_NAMES}, got {settings!r}")
    params = {k: settings[k] for k in SETTING_NAMES}
    validate_settings(**{k: params[k] for k in SETTING_NAMES[:5]})
    params["reference"] = bool(params["reference"])
    check_profile(runtime, bool(profile))
    return {"runtime": runtime, "profile": bool(profile), **params}


def measure_job(ctx: WorkerContext, task_id: str, delivery_tag: Optional[str], blob: str, runtime: str,
                settings: Dict[str, Any], profile: bool = False) -> Dict[str, Any]:
    """Run one farm job; refusals (bad model, settings, missing blob) come back as an 'error' result."""
    started, picked_up_at = time.perf_counter(), time.time()
    with ctx.running(task_id, delivery_tag):
        attempts_key = f"{PREFIX}attempts:{task_id}"
        try:
            key = blob_key(blob)
        except ValueError as exc:  # not a SHA-256: nothing was fetched
            return {"error": {"type": "ValueError", "detail": str(exc)}, "farm": {"worker": ctx.name}}
        data = ctx.blobs.get(blob)
        pipe = ctx.client.pipeline(transaction=False).incr(attempts_key).expire(attempts_key, RESULT_TTL_S)
        attempt, _, *fetched = (pipe if data is not None else pipe.get(key)).execute()
        farm = {"worker": ctx.name, "hardware_class": ctx.class_id, "attempt": attempt}
        try:
            if data is None:
                data = check_blob(blob, fetched[0])
                ctx.blobs.put(blob, data)
            if runtime != ctx.runtime:
                raise ValueError(f"this worker serves {ctx.runtime}, not {runtime!r}")
            result = run_measurement(data, job_params(runtime, settings, profile), ctx)
        except (AgentError, ValueError) as exc:
            return {"error": {"type": type(exc).__name__, "detail": str(exc)}, "farm": farm}
        # job_s - wall_s: the worker's own overhead; the wall-clock stamps let a host on the same clock time the hops
        result["farm"] = {**farm, "job_s": time.perf_counter() - started, "picked_up_at": picked_up_at,
                          "done_at": time.time()}
        return result


class Heartbeats(threading.Thread):
    """Announce the worker every interval and keep its running job's message invisible to other workers."""

    def __init__(self, ctx: WorkerContext, interval_s: float):
        super().__init__(name="farm-heartbeat", daemon=True)
        self.ctx, self.interval_s = ctx, interval_s
        self.stopped, self.changed = threading.Event(), threading.Event()
        self.started_at = time.time()

    def beat(self) -> None:
        with self.ctx.lock:
            busy, done = dict(self.ctx.busy or {}), self.ctx.jobs_done
        state = {"hostname": socket.gethostname(), "pid": os.getpid(), "runtime": self.ctx.runtime,
                 "started": self.started_at, "busy": busy.get("task_id"), "busy_since": busy.get("since"),
                 "jobs_done": done}
        pipe = self.ctx.client.pipeline(transaction=False)
        heartbeat(pipe, self.ctx.class_id, self.ctx.name, state, ttl_s=3 * self.interval_s)
        if busy.get("delivery_tag"):
            # kombu redelivers unacked messages older than the visibility timeout: a live worker's job stays fresh
            pipe.zadd("unacked_index", {busy["delivery_tag"]: time.time()}, xx=True)
        pipe.execute()

    def stop(self) -> None:
        self.stopped.set()
        self.changed.set()

    def run(self) -> None:
        from redis.exceptions import RedisError

        while not self.stopped.is_set():
            if self.changed.wait(self.interval_s):
                self.stopped.wait(COALESCE_S)  # one beat for a job's end and the next one's start
            self.changed.clear()
            if self.stopped.is_set():
                return
            try:
                self.beat()
            except RedisError as exc:  # the broker went away for a moment: the next beat retries
                print(f"edgeprune-agent worker: heartbeat failed: {exc}", file=sys.stderr)


def run_worker(args: argparse.Namespace, energy_protocol, sensor_options: dict) -> None:
    """Serve jobs of this device's hardware class until interrupted."""
    try:
        import celery  # noqa: F401
    except ImportError as exc:
        raise FarmError("the worker needs Celery and redis: pip install 'edgeprune-agent[farm]'") from exc
    from celery.signals import task_postrun
    from redis.exceptions import RedisError

    from .fingerprint import device_info, fingerprint_id
    from .runner import energy_overhead_s, prestart
    from .runtimes import check_available, runtime_version
    from .sensors import open_sensor

    if args.visibility_timeout < 2:
        raise FarmError(f"--visibility-timeout must be >= 2 seconds, got {args.visibility_timeout}")
    check_available(args.runtime)
    url = broker_url(args.broker, args.password_file)
    class_id = hardware_class(fingerprint_id(args.sysfs_root), args.runtime, runtime_version(args.runtime))
    client = redis_client(url)
    try:
        client.ping()
    except RedisError as exc:
        raise FarmError(f"cannot reach the broker at {redacted(url)}: {exc}") from exc
    sensor = open_sensor(args.sensor, args.sysfs_root, watts_per_busy_core=args.estimate_watts_per_core,
                         bin_dir=args.bin_dir, options=sensor_options)
    name = args.name or f"{socket.gethostname()}-{os.getpid()}"
    spec = {"name": args.sensor, "sysfs_root": args.sysfs_root, "watts_per_busy_core": args.estimate_watts_per_core,
            "bin_dir": args.bin_dir, "options": sensor_options, "energy_protocol": asdict(energy_protocol)}
    ctx = WorkerContext(name, args.runtime, class_id, client, sensor, args.sysfs_root, args.bin_dir,
                        energy_protocol, spec, energy_overhead_s(sensor, energy_protocol))
    client.set(info_key(class_id), json.dumps(device_info(args.sysfs_root, args.bin_dir)), ex=RESULT_TTL_S)
    app = make_celery(url, with_results=True, visibility_s=args.visibility_timeout)

    @app.task(name=TASK_NAME, bind=True, resultrepr_maxsize=64)  # Celery reprs every result: keep it short
    def measure(self, blob: str, runtime: str, settings: Dict[str, Any], profile: bool = False):
        tag = (self.request.properties or {}).get("delivery_tag")  # kombu's key for the unacked message
        return measure_job(ctx, self.request.id, tag, blob, runtime, settings, profile)

    # after the result is stored and published (before the ack): the next job's process starts off the result's path
    task_postrun.connect(lambda **_: prestart(), sender=measure, weak=False)
    beats = Heartbeats(ctx, interval_s=args.visibility_timeout / 4)
    ctx.on_change = beats.changed.set
    beats.beat()
    beats.start()
    prestart()  # the first job's process, so it starts no slower than the next
    print(f"edgeprune-agent worker {name}: hardware class {class_id}, queue {queue_name(class_id)}, "
          f"broker {redacted(url)}", file=sys.stderr, flush=True)
    try:
        app.worker_main(["worker", "--pool=solo", "--concurrency=1", "-Q", queue_name(class_id),
                         "-n", f"{name}@%h", "--loglevel=WARNING", "--without-gossip", "--without-mingle",
                         "--without-heartbeat"])
    finally:
        beats.stop()
        client.delete(worker_key(class_id, name))
        if sensor is not None:
            sensor.close()
