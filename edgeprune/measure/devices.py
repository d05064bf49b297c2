"""Where models are measured: the local CPU in-process, or a device agent over HTTP; same result schema."""
from __future__ import annotations

import ssl
import time
from dataclasses import dataclass, field

import httpx

from edgeprune.errors import EdgepruneError
from edgeprune.measure.settings import MeasureSettings
from edgeprune.measurement import Measurement
from edgeprune.measure.tls import TlsTrustError, ca_context, pinned_context


class DeviceUnavailable(EdgepruneError):
    """The device could not be reached, or went away mid-run."""


class MeasurementRejected(EdgepruneError):
    """The device refused or failed a measurement (bad model, missing runtime, ...)."""


class LocalDevice:
    """This machine, measured in-process with the agent's own measurement code."""

    in_process = True  # shares the host CPU: the fleet runner never exports models while it measures

    def __init__(self, name: str = "local", sensor: str = "auto", sysfs_root: str = "/",
                 estimate_watts_per_core: float | None = None):
        self.name = name
        self._sensor_name = sensor
        self._sysfs_root = sysfs_root
        self._watts = estimate_watts_per_core
        self._sensor = None

    def _open_sensor(self):
        from edgeprune_agent.sensors import open_sensor

        if self._sensor is None and self._sensor_name != "none":
            kw = {} if self._watts is None else {"watts_per_busy_core": self._watts}
            self._sensor = open_sensor(self._sensor_name, self._sysfs_root, **kw)
        return self._sensor

    def info(self) -> dict:
        from edgeprune_agent import device_info

        return device_info(self._sysfs_root)

    def measure(self, model_bytes: bytes, runtime: str, settings: MeasureSettings,
                profile: bool = False) -> Measurement:
        from edgeprune_agent import ModelInvalid, RuntimeUnavailable, measure_model

        try:
            result = measure_model(model_bytes, runtime=runtime, sensor=self._open_sensor(), profile=profile,
                                   **settings.as_kwargs())
        except (ModelInvalid, RuntimeUnavailable, ValueError) as exc:
            raise MeasurementRejected(f"{self.name}: {exc}") from exc
        return parse_result(self.name, result)


def parse_result(device: str, result: dict) -> Measurement:
    """The device's result JSON as a Measurement; MeasurementRejected when it is not one."""
    try:
        return Measurement.from_result(result)
    except ValueError as exc:
        raise MeasurementRejected(f"device {device!r} sent a malformed result: {exc}") from exc


@dataclass
class AgentDevice:
    """A device agent reached over HTTP(S) with a bearer token; long jobs are polled, not waited on."""

    name: str
    url: str
    token: str
    ca_cert: str | None = None
    tls_fingerprint: str | None = None
    request_timeout_s: float = 5.0  # every call but the upload is quick: a silent agent shows within seconds
    silent_after_s: float = 12.0  # retry connection errors and timeouts this long, then report the device gone
    busy_wait_s: float = 600.0  # keep retrying 503 + Retry-After (queue full) this long
    _http: httpx.Client | None = field(default=None, init=False, repr=False)

    def _client(self) -> httpx.Client:
        """One keep-alive connection for the whole calibration run, trusting the pinned or given certificate."""
        if self._http is None:
            verify: ssl.SSLContext | bool = True
            try:
                if self.tls_fingerprint:
                    verify = pinned_context(self.url, self.tls_fingerprint, self.request_timeout_s)
                elif self.ca_cert:
                    verify = ca_context(self.ca_cert)
            except OSError as exc:
                raise DeviceUnavailable(f"device {self.name!r} at {self.url} did not answer: {exc}") from exc
            except TlsTrustError as exc:
                raise MeasurementRejected(f"device {self.name!r}: {exc}") from exc
            self._http = httpx.Client(base_url=self.url, verify=verify,
                                      timeout=httpx.Timeout(self.request_timeout_s, connect=self.request_timeout_s))
        return self._http

    def _request(self, method: str, path: str, headers: dict | None = None, idempotent: bool = True,
                 **kw) -> httpx.Response:
        """Send with retries: connection errors (timeouts too when idempotent) and 503 with Retry-After."""
        headers = {"Authorization": f"Bearer {self.token}", **(headers or {})}
        started, delay, silent_since = time.monotonic(), 0.25, None
        while True:
            try:
                resp = self._client().request(method, path, headers=headers, **kw)
            except httpx.TransportError as exc:
                sent = not isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout))
                silent_since = silent_since or time.monotonic()
                silent = time.monotonic() - silent_since
                if (sent and not idempotent) or silent + delay > self.silent_after_s:
                    raise DeviceUnavailable(f"device {self.name!r} at {self.url} did not answer for {silent:.0f} s "
                                            f"({type(exc).__name__}: {exc}); is the agent running and reachable?"
                                            ) from exc
                time.sleep(delay)
                delay = min(2 * delay, 2.0)
                continue
            silent_since = None
            retry_after = _retry_after(resp)
            if retry_after is not None and time.monotonic() - started + retry_after <= self.busy_wait_s:
                time.sleep(retry_after)
                continue
            _raise_for_status(self.name, resp)
            return resp

    def health(self) -> dict:
        return self._request("GET", "/v1/health").json()

    def info(self) -> dict:
        return self._request("GET", "/v1/info").json()

    def measure(self, model_bytes: bytes, runtime: str, settings: MeasureSettings,
                profile: bool = False) -> Measurement:
        """Queue the job (wait=false), then poll it until done, for at most its own deadline plus the queue ahead."""
        params = {"runtime": runtime, **settings.as_kwargs(), "wait": "false"}
        if profile:
            params["profile"] = "true"
        upload_s = self.request_timeout_s + 10.0 + len(model_bytes) / 2**20  # >= 1 MiB/s
        job = self._request("POST", "/v1/measure", params=params, content=model_bytes, idempotent=False,
                            headers={"Content-Type": "application/octet-stream"},
                            timeout=httpx.Timeout(upload_s, connect=self.request_timeout_s)).json()
        give_up = time.monotonic() + job["ahead_s"] + job["deadline_s"] + 2 * self.silent_after_s
        long_poll = {"wait_s": max(self.request_timeout_s / 2, 0.1)}  # the agent answers as soon as the job ends
        while True:
            asked = time.monotonic()
            view = self._request("GET", f"/v1/jobs/{job['job_id']}", params=long_poll).json()
            if view["status"] not in ("queued", "running"):
                return parse_result(self.name, _job_outcome(self.name, view))
            if time.monotonic() > give_up:
                self._request("DELETE", f"/v1/jobs/{job['job_id']}")
                raise DeviceUnavailable(f"device {self.name!r}: job {job['job_id']} did not end within its "
                                        f"{job['deadline_s']:g} s deadline (plus {job['ahead_s']:g} s queued ahead); "
                                        "cancelled it")
            if time.monotonic() - asked < 0.05:  # an agent without long polls answered at once
                time.sleep(0.2)


def _retry_after(resp: httpx.Response) -> float | None:
    """Seconds to wait before retrying a 503 that says when (queue full), else None."""
    if resp.status_code != 503 or "retry-after" not in resp.headers:
        return None
    try:
        return min(max(float(resp.headers["retry-after"]), 0.0), 60.0)
    except ValueError:
        return 5.0


def _raise_for_status(name: str, resp: httpx.Response) -> None:
    """MeasurementRejected for the client's mistakes, DeviceUnavailable for the agent's failures."""
    if resp.status_code == 401:
        raise MeasurementRejected(f"device {name!r} rejected the token (401); check --token-file")
    if resp.status_code >= 500 and resp.status_code != 501:
        raise DeviceUnavailable(f"device {name!r} failed ({resp.status_code}): {_error_text(resp)}")
    if resp.status_code >= 400:
        raise MeasurementRejected(f"device {name!r} refused ({resp.status_code}): {_error_text(resp)}")


def _job_outcome(name: str, view: dict) -> dict:
    """The result of a finished job, or the error its failure maps to."""
    if view["status"] == "done":
        return view["result"]
    error = view.get("error") or {}
    text = " — ".join(str(error[k]) for k in ("error", "detail") if error.get(k)) or view["status"]
    status = error.get("http_status", 500)
    if view["status"] == "cancelled" or (status >= 500 and status != 501):
        raise DeviceUnavailable(f"device {name!r}: job {view['job_id']} {view['status']} ({status}): {text}")
    raise MeasurementRejected(f"device {name!r} refused ({status}): {text}")


def _error_text(resp: httpx.Response) -> str:
    try:
        body = resp.json()
    except ValueError:
        return resp.text[:300]
    if isinstance(body, dict):
        return " — ".join(str(body[k]) for k in ("error", "detail") if body.get(k)) or str(body)[:300]
    return str(body)[:300]
