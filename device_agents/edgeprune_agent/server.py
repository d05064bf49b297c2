"""FastAPI app: token-protected, exclusive model measurement over HTTP."""
from __future__ import annotations

import asyncio
import hmac
import time
from contextlib import asynccontextmanager
from dataclasses import asdict
from typing import Any, Dict, Optional

from fastapi import Depends, FastAPI, Query, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.requests import ClientDisconnect

from ._version import __version__
from .api_schema import MEASURE_BODY, MEASURE_RESPONSES, JobView, bounds, describe_bounds, error_responses
from .cli import BODY_IDLE_TIMEOUT_S
from .energy import EnergyProtocol
from .errors import RuntimeUnavailable
from .fingerprint import device_info
from .http_errors import ApiError, classify, error_response, install_handlers
from .jobs import DEFAULT_MAX_QUEUED_BYTES, Job, JobQueueFull, MeasureWorker
from .measure import check_profile, validate_settings
from .runner import SETUP_S, energy_overhead_s, job_deadline_s, prestart, run_measurement
from .runtimes import check_available, known_runtimes
from .sensors import open_sensor

DEFAULT_MAX_UPLOAD_BYTES = 64 * 2**20
MAX_POLL_WAIT_S = 30.0


def _limit_text(limit: int) -> str:
    """Human-readable upload limit."""
    return f"{limit} bytes ({limit / 2**20:g} MiB)"


async def read_limited_body(request: Request, limit: int, idle_timeout_s: float = BODY_IDLE_TIMEOUT_S,
                            total_timeout_s: Optional[float] = None) -> bytes:
    """Read the body, refusing (413) over ``limit`` and (408) when it stalls for ``idle_timeout_s`` or runs long."""
    declared = declared_length(request, limit)
    total_timeout_s = total_timeout_s or 60.0 + (declared or limit) / 2**20  # a 1 MiB/s link, plus a minute
    end = time.monotonic() + total_timeout_s
    body = bytearray()
    chunks = request.stream().__aiter__()
    while True:
        wait_s = min(idle_timeout_s, end - time.monotonic())
        try:
            chunk = await asyncio.wait_for(chunks.__anext__(), timeout=max(wait_s, 0.001))
        except StopAsyncIteration:
            return bytes(body)
        except asyncio.TimeoutError:
            raise ApiError(408, "body timeout", f"received {len(body)} of {declared or '?'} bytes, then nothing for "
                                                f"{wait_s:.1f} s; send the whole model without pauses")
        except ClientDisconnect:
            raise ApiError(400, "client disconnected", f"the upload stopped after {len(body)} bytes")
        body.extend(chunk)
        if len(body) > limit:
            raise ApiError(413, "model too large", f"upload exceeds the limit of {_limit_text(limit)}")


def declared_length(request: Request, limit: int) -> Optional[int]:
    """The Content-Length (None for a chunked body), checked against the upload limit before reading (400/413)."""
    declared = request.headers.get("content-length")
    if declared is None:
        return None
    try:
        size = int(declared)
    except ValueError:
        raise ApiError(400, "bad content-length", f"Content-Length {declared!r} is not an integer")
    if size > limit:
        raise ApiError(413, "model too large", f"upload of {size} bytes exceeds the limit of {_limit_text(limit)}")
    return size


def job_view(job: Job) -> Dict[str, Any]:
    """Public JSON view of a job."""
    view: Dict[str, Any] = {"job_id": job.job_id, "status": job.status, "deadline_s": job.deadline_s}
    if job.status == "running" and job.started is not None:
        view["running_s"] = time.monotonic() - job.started
    if job.finished is not None and job.started is not None:
        view["ran_s"] = job.finished - job.started
    if job.status == "done":
        view["result"] = job.result
    elif job.error is not None:
        status, error, detail = classify(job.error)
        view["error"] = {"error": error, "detail": detail, "http_status": status}
    return view


def _finished_response(job: Job) -> JSONResponse:
    """200 with the result, or the failure's status with its error body (X-Job-Id names the job either way)."""
    if job.status == "done":
        return JSONResponse(job.result, headers={"X-Job-Id": job.job_id})
    status, error, detail = classify(job.error) if job.error else (500, "measurement failed", None)
    return error_response(status, error, detail, headers={"X-Job-Id": job.job_id}, job_id=job.job_id)


def _bearer_auth(token: str):
    """Dependency that checks 'Authorization: Bearer <token>' in constant time (declared as HTTP bearer)."""
    expected = token.encode()
    scheme = HTTPBearer(auto_error=False, description="the token from the agent's --token-file")

    def require_token(credentials: Optional[HTTPAuthorizationCredentials] = Depends(scheme)) -> None:
        given = credentials.credentials.strip().encode() if credentials is not None else b""
        if not hmac.compare_digest(given, expected):
            raise ApiError(401, "unauthorized", "missing or wrong bearer token",
                           headers={"WWW-Authenticate": "Bearer"})

    return require_token


def _declared_query_only(request: Request) -> None:
    """400 for a query parameter the route does not declare: a misspelt setting must not be ignored silently."""
    route = request.scope.get("route")
    known = {p.alias for p in route.dependant.query_params} if route is not None else set()
    unknown = sorted(set(request.query_params) - known)
    if unknown:
        raise ApiError(400, "unknown parameter", f"unknown query parameter(s) {unknown}; this route takes "
                                                 f"{sorted(known) or 'none'}")


def _check_request(runtime: str, settings: Dict[str, Any], profile: bool = False) -> None:
    """Reject unknown/uninstalled runtimes, out-of-range settings and impossible profiles before reading the body."""
    try:
        check_available(runtime)
    except ValueError as exc:
        raise ApiError(400, "unknown runtime", str(exc))
    except RuntimeUnavailable as exc:
        raise ApiError(501, "runtime unavailable", str(exc))
    try:
        validate_settings(**settings)
        check_profile(runtime, profile)
    except ValueError as exc:
        raise ApiError(400, "invalid settings", str(exc))


def sensor_view(sensor) -> Optional[Dict[str, Any]]:
    """Which energy source this agent uses (name, kind, refresh and scope) for /v1/info."""
    if sensor is None:
        return None
    view: Dict[str, Any] = {"name": sensor.name, "kind": sensor.kind, "refresh_s": sensor.refresh_s}
    source = getattr(sensor, "source", None)
    if source is not None:
        view.update(source.describe())
    return view


def _start_advertiser(advertise: Optional[Dict[str, Any]], sysfs_root: str, bin_dir: Optional[str],
                      sensor_name: Optional[str]):
    """Register the zeroconf announcement (blocking: mDNS probing takes a second or two)."""
    if not advertise:
        return None
    from .advertise import Advertiser, service_properties

    props = service_properties(device_info(sysfs_root, bin_dir), __version__, sensor_name)
    return Advertiser(advertise["name"], advertise["host"], advertise["port"], props)


def create_app(token: str, max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES, sensor_name: str = "auto",
               sysfs_root: str = "/", estimate_watts: float = 10.0, max_queued: int = 16,
               bin_dir: Optional[str] = None, energy_protocol: Optional[EnergyProtocol] = None,
               advertise: Optional[Dict[str, Any]] = None, sensor_options: Optional[Dict[str, Any]] = None,
               max_queued_bytes: int = DEFAULT_MAX_QUEUED_BYTES, body_idle_timeout_s: float = BODY_IDLE_TIMEOUT_S,
               job_setup_s: float = SETUP_S, job_memory_bytes: Optional[int] = None) -> FastAPI:
    """Build the agent app; the energy sensor is opened now so a bad choice fails at startup.

    Jobs run one at a time, each in a child process killed at its deadline (``runner.run_measurement``).
    """
    if not token or not token.strip():
        raise ValueError("the agent needs a non-empty token")
    if max_upload_bytes < 1 or max_queued_bytes < max_upload_bytes:
        raise ValueError(f"need 1 <= max_upload_bytes ({max_upload_bytes}) <= max_queued_bytes "
                         f"({max_queued_bytes})")
    sensor = open_sensor(sensor_name, sysfs_root, watts_per_busy_core=estimate_watts, bin_dir=bin_dir,
                         options=sensor_options)
    protocol = energy_protocol or EnergyProtocol()
    energy_s = energy_overhead_s(sensor, protocol)
    sensor_spec = {"name": sensor_name, "sysfs_root": sysfs_root, "watts_per_busy_core": estimate_watts,
                   "bin_dir": bin_dir, "options": sensor_options, "energy_protocol": asdict(protocol)}

    def run_job(job: Job) -> Dict[str, Any]:
        return run_measurement(job.model_bytes, job.params, job.deadline_s, sensor=sensor_spec, cancel=job.cancel,
                               memory_limit_bytes=job_memory_bytes)

    worker = MeasureWorker(run_job, max_queued=max_queued, max_queued_bytes=max_queued_bytes)
    uploading = {"bytes": 0}  # declared bytes of bodies being read now, counted against the queue's byte cap

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        worker.start()
        prestart()  # the first job's process, so it starts no slower than the next
        advertiser = await asyncio.to_thread(_start_advertiser, advertise, sysfs_root, bin_dir,
                                             sensor.name if sensor is not None else None)
        app.state.advertiser = advertiser
        yield
        if advertiser is not None:
            await asyncio.to_thread(advertiser.close)
        await asyncio.to_thread(worker.stop, 10.0)
        if sensor is not None:
            sensor.close()

    app = FastAPI(title="edgeprune-agent", version=__version__, lifespan=lifespan,
                  dependencies=[Depends(_declared_query_only)],
                  description="Measures models on this device, one job at a time, each under a hard deadline.")
    app.state.worker = worker
    app.state.sensor = sensor
    install_handlers(app)
    auth = Depends(_bearer_auth(token.strip()))

    def setting(default: Any, name: str, what: str) -> Any:
        return Query(default, description=f"{what}; {describe_bounds(name)}", json_schema_extra=bounds(name))

    @app.get("/v1/health", responses=error_responses(400))
    async def health() -> Dict[str, str]:
        return {"status": "ok", "version": __version__}

    @app.get("/v1/info", dependencies=[auth], responses=error_responses(400, 401))
    async def info() -> Dict[str, Any]:
        described = await asyncio.to_thread(device_info, sysfs_root, bin_dir)
        described["energy_sensor"] = sensor_view(sensor)
        return described

    @app.post("/v1/measure", dependencies=[auth], openapi_extra=MEASURE_BODY, responses=MEASURE_RESPONSES)
    async def measure(request: Request,
                      runtime: str = Query("onnxruntime", json_schema_extra={"enum": known_runtimes()}),
                      threads: int = setting(1, "threads", "intra-op threads"),
                      warmup: int = setting(10, "warmup", "untimed runs first"),
                      min_repeats: int = setting(30, "min_repeats", "fewest timed runs"),
                      min_duration_s: float = setting(0.5, "min_duration_s", "shortest timed loop"),
                      max_duration_s: float = setting(60.0, "max_duration_s",
                                                      "longest timed loop; the job's deadline is "
                                                      f"{job_setup_s:g} s + 2 x this + energy windows"),
                      wait: bool = Query(True), reference: bool = Query(True),
                      profile: bool = Query(False)) -> JSONResponse:
        settings = {"threads": threads, "warmup": warmup, "min_repeats": min_repeats,
                    "min_duration_s": min_duration_s, "max_duration_s": max_duration_s}
        _check_request(runtime, settings, profile)
        declared = declared_length(request, max_upload_bytes)
        size = max_upload_bytes if declared is None else declared  # a chunked body may grow to the limit
        if size == 0:
            raise ApiError(400, "empty body", "send the model file as the request body "
                                              "(Content-Type: application/octet-stream)")
        try:
            worker.check_room(size + uploading["bytes"])
        except JobQueueFull as exc:
            raise ApiError(503, "queue full", str(exc), headers={"Retry-After": "10"})
        uploading["bytes"] += size
        try:
            body = await read_limited_body(request, max_upload_bytes, body_idle_timeout_s)
        finally:
            uploading["bytes"] -= size
        if not body:
            raise ApiError(400, "empty body", "send the model file as the request body")
        deadline_s = job_deadline_s(max_duration_s, energy_s, job_setup_s)
        try:
            job = worker.submit(body, {"runtime": runtime, "reference": reference, "profile": profile, **settings},
                                deadline_s)
        except JobQueueFull as exc:
            raise ApiError(503, "queue full", str(exc), headers={"Retry-After": "10"})
        del body
        if not wait:
            return JSONResponse({"job_id": job.job_id, "status": "queued", "deadline_s": deadline_s,
                                 "ahead_s": worker.ahead_s(job)}, status_code=202,
                                headers={"Location": f"/v1/jobs/{job.job_id}"})
        await asyncio.wrap_future(job.future)
        return _finished_response(job)

    @app.get("/v1/jobs/{job_id}", dependencies=[auth], response_model=None,
             responses={200: {"model": JobView, "description": "the job"}, **error_responses(400, 401, 404, 422)})
    async def get_job(job_id: str, wait_s: float = Query(0.0, ge=0.0, le=MAX_POLL_WAIT_S,
                                                        description="answer as soon as the job ends, or after "
                                                                    "this many seconds (long poll)")
                      ) -> Dict[str, Any]:
        job = worker.get(job_id)
        if job is None:
            raise ApiError(404, "unknown job", f"no job with id {job_id!r} (finished jobs expire)")
        if wait_s > 0 and job.finished is None:
            try:
                await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(job.future)), timeout=wait_s)
            except asyncio.TimeoutError:
                pass
        return job_view(job)

    @app.delete("/v1/jobs/{job_id}", dependencies=[auth], response_model=None,
                responses={200: {"model": JobView, "description": "the cancelled job"},
                           **error_responses(400, 401, 404, 409)})
    async def cancel_job(job_id: str) -> Dict[str, Any]:
        """Cancel a queued job, or stop a running one (its process is killed); answers once it has ended."""
        job = worker.get(job_id)
        if job is None:
            raise ApiError(404, "unknown job", f"no job with id {job_id!r} (finished jobs expire)")
        if job.finished is not None:
            raise ApiError(409, "already finished", f"job {job_id} already ended ({job.status})", job_id=job_id)
        worker.cancel(job_id)
        try:
            await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(job.future)), timeout=15.0)
        except asyncio.TimeoutError:  # the job process is being killed; the view still says running
            pass
        return job_view(job)

    return app
