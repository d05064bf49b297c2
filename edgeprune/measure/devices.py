"""Where models are measured: the local CPU in-process, or a device agent over HTTP; same result schema."""
from __future__ import annotations

from dataclasses import dataclass, field

import httpx

from edgeprune.errors import EdgepruneError
from edgeprune.measure.settings import MeasureSettings


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

    def measure(self, model_bytes: bytes, runtime: str, settings: MeasureSettings, profile: bool = False) -> dict:
        from edgeprune_agent import ModelInvalid, RuntimeUnavailable, measure_model

        try:
            return measure_model(model_bytes, runtime=runtime, sensor=self._open_sensor(), profile=profile,
                                 **settings.as_kwargs())
        except (ModelInvalid, RuntimeUnavailable, ValueError) as exc:
            raise MeasurementRejected(f"{self.name}: {exc}") from exc


@dataclass
class AgentDevice:
    """A device agent reached over HTTP with a bearer token."""

    name: str
    url: str
    token: str
    timeout_s: float = 600.0
    _http: httpx.Client | None = field(default=None, init=False, repr=False)

    def _client(self) -> httpx.Client:
        """One keep-alive connection for the whole calibration run."""
        if self._http is None:
            self._http = httpx.Client(base_url=self.url, timeout=httpx.Timeout(self.timeout_s, connect=10.0))
        return self._http

    def _request(self, method: str, path: str, headers: dict | None = None, **kw) -> dict:
        headers = {"Authorization": f"Bearer {self.token}", **(headers or {})}
        try:
            resp = self._client().request(method, path, headers=headers, **kw)
        except httpx.HTTPError as exc:
            raise DeviceUnavailable(f"device {self.name!r} at {self.url} did not answer: {exc}") from exc
        if resp.status_code == 401:
            raise MeasurementRejected(f"device {self.name!r} rejected the token (401); check --token-file")
        if resp.status_code >= 500 and resp.status_code != 501:
            raise DeviceUnavailable(f"device {self.name!r} failed ({resp.status_code}): {_error_text(resp)}")
        if resp.status_code >= 400:
            raise MeasurementRejected(f"device {self.name!r} refused ({resp.status_code}): {_error_text(resp)}")
        return resp.json()

    def health(self) -> dict:
        return self._request("GET", "/v1/health")

    def info(self) -> dict:
        return self._request("GET", "/v1/info")

    def measure(self, model_bytes: bytes, runtime: str, settings: MeasureSettings, profile: bool = False) -> dict:
        params = {"runtime": runtime, **settings.as_kwargs(), "wait": "true"}
        if profile:
            params["profile"] = "true"
        result = self._request("POST", "/v1/measure", params=params, content=model_bytes,
                               headers={"Content-Type": "application/octet-stream"})
        return result


def _error_text(resp: httpx.Response) -> str:
    try:
        body = resp.json()
    except ValueError:
        return resp.text[:300]
    if isinstance(body, dict):
        return " — ".join(str(body[k]) for k in ("error", "detail") if body.get(k)) or str(body)[:300]
    return str(body)[:300]
