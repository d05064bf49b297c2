"""FastAPI app: token-protected, exclusive model measurement over HTTP."""
from __future__ import annotations

import asyncio
import hmac
from contextlib import asynccontextmanager
from typing import Any, Dict, Optional

from fastapi import Depends, FastAPI, Header, Query, Request
from fastapi.responses import JSONResponse

from ._version import __version__
from .energy import EnergyProtocol
from .errors import RuntimeUnavailable
from .fingerprint import device_info
from .http_errors import ApiError, classify, error_response, install_handlers
from .jobs import Job, JobQueueFull, MeasureWorker
from .measure import check_profile, measure_model, validate_settings
from .runtimes import check_available
from .sensors import open_sensor

DEFAULT_MAX_UPLOAD_BYTES = 64 * 2**20


def _limit_text(limit: int) -> str:
    """Human-readable upload limit."""
    return f"{limit} bytes ({limit / 2**20:g} MiB)"


async def read_limited_body(request: Request, limit: int) -> bytes:
    """Read the body, refusing (413) by Content-Length before reading and while streaming."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise ApiError(400, "bad content-length", f"Content-Length {declared!r} is not an integer")
        if size > limit:
            raise ApiError(413, "model too large",
                           f"upload of {size} bytes exceeds the limit of {_limit_text(limit)}")
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > limit:
            raise ApiError(413, "model too large", f"upload exceeds the limit of {_limit_text(limit)}")
    return bytes(body)


def job_view(job: Job) -> Dict[str, Any]:
    """Public JSON view of a job."""
    view: Dict[str, Any] = {"job_id": job.job_id, "status": job.status}
    if job.status == "done":
        view["result"] = job.result
    elif job.status == "failed" and job.error is not None:
        status, error, detail = classify(job.error)
        view["error"] = {"error": error, "detail": detail, "http_status": status}
    return view


def _finished_response(job: Job) -> JSONResponse:
    """200 with the result, or the failure's status with its error body."""
    if job.status == "done":
        return JSONResponse(job.result)
    status, error, detail = classify(job.error) if job.error else (500, "measurement failed", None)
    return error_response(status, error, detail, job_id=job.job_id)


def _bearer_auth(token: str):
    """Dependency that checks 'Authorization: Bearer <token>' in constant time."""
    expected = token.encode()

    def require_token(authorization: Optional[str] = Header(None)) -> None:
        scheme, _, given = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected):
            raise ApiError(401, "unauthorized", "missing or wrong bearer token",
                           headers={"WWW-Authenticate": "Bearer"})

    return require_token


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
               advertise: Optional[Dict[str, Any]] = None,
               sensor_options: Optional[Dict[str, Any]] = None) -> FastAPI:
    """Build the agent app; the energy sensor is opened now so a bad choice fails at startup."""
    if not token or not token.strip():
        raise ValueError("the agent needs a non-empty token")
    if max_upload_bytes < 1:
        raise ValueError(f"max_upload_bytes must be >= 1, got {max_upload_bytes}")
    sensor = open_sensor(sensor_name, sysfs_root, watts_per_busy_core=estimate_watts, bin_dir=bin_dir,
                         options=sensor_options)

    def run_job(model_bytes: bytes, **params: Any) -> Dict[str, Any]:
        return measure_model(model_bytes, sensor=sensor, sysfs_root=sysfs_root, bin_dir=bin_dir,
                             energy_protocol=energy_protocol, **params)

    worker = MeasureWorker(run_job, max_queued=max_queued)

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        worker.start()
        advertiser = await asyncio.to_thread(_start_advertiser, advertise, sysfs_root, bin_dir,
                                             sensor.name if sensor is not None else None)
        app.state.advertiser = advertiser
        yield
        if advertiser is not None:
            await asyncio.to_thread(advertiser.close)
        worker.stop(timeout=5.0)
        if sensor is not None:
            sensor.close()

    app = FastAPI(title="edgeprune-agent", version=__version__, lifespan=lifespan)
    app.state.worker = worker
    app.state.sensor = sensor
    install_handlers(app)
    auth = Depends(_bearer_auth(token.strip()))

    @app.get("/v1/health")
    async def health() -> Dict[str, str]:
        return {"status": "ok", "version": __version__}

    @app.get("/v1/info", dependencies=[auth])
    async def info() -> Dict[str, Any]:
        described = await asyncio.to_thread(device_info, sysfs_root, bin_dir)
        described["energy_sensor"] = sensor_view(sensor)
        return described

    @app.post("/v1/measure", dependencies=[auth])
    async def measure(request: Request, runtime: str = Query("onnxruntime"), threads: int = Query(1),
                      warmup: int = Query(10), min_repeats: int = Query(30),
                      min_duration_s: float = Query(0.5), max_duration_s: float = Query(60.0),
                      wait: bool = Query(True), reference: bool = Query(True),
                      profile: bool = Query(False)) -> JSONResponse:
        settings = {"threads": threads, "warmup": warmup, "min_repeats": min_repeats,
                    "min_duration_s": min_duration_s, "max_duration_s": max_duration_s}
        _check_request(runtime, settings, profile)
        body = await read_limited_body(request, max_upload_bytes)
        if not body:
            raise ApiError(400, "empty body", "send the model file as the request body "
                                              "(Content-Type: application/octet-stream)")
        try:
            job = worker.submit(body, {"runtime": runtime, "reference": reference, "profile": profile, **settings})
        except JobQueueFull as exc:
            raise ApiError(503, "queue full", str(exc), headers={"Retry-After": "10"})
        if not wait:
            return JSONResponse({"job_id": job.job_id, "status": "queued"}, status_code=202,
                                headers={"Location": f"/v1/jobs/{job.job_id}"})
        await asyncio.wrap_future(job.future)
        return _finished_response(job)

    @app.get("/v1/jobs/{job_id}", dependencies=[auth])
    async def get_job(job_id: str) -> Dict[str, Any]:
        job = worker.get(job_id)
        if job is None:
            raise ApiError(404, "unknown job", f"no job with id {job_id!r} (finished jobs expire)")
        return job_view(job)

    return app
