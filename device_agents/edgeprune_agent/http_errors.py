"""JSON error responses for the agent's HTTP API."""
from __future__ import annotations

from http import HTTPStatus
from typing import Dict, Optional, Tuple

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from .errors import ModelInvalid, RuntimeUnavailable, SensorUnavailable
from .runner import DeadlineExceeded, JobCancelled, MeasurementCrashed, MeasurementFailed


class ApiError(Exception):
    """An error answered as {"error", "detail"} with an HTTP status."""

    def __init__(self, status: int, error: str, detail: object = None,
                 headers: Optional[Dict[str, str]] = None, **extra: object):
        super().__init__(f"{status} {error}: {detail}")
        self.status, self.error, self.detail, self.headers = status, error, detail, headers
        self.extra = extra


def classify(exc: BaseException) -> Tuple[int, str, str]:
    """Map a measurement exception to (HTTP status, error, detail)."""
    if isinstance(exc, ModelInvalid):
        return 422, "model invalid", str(exc)
    if isinstance(exc, DeadlineExceeded):
        return 422, "deadline exceeded", str(exc)
    if isinstance(exc, MeasurementCrashed):
        return 422, "model crashed the runtime", str(exc)
    if isinstance(exc, JobCancelled):
        return 409, "cancelled", str(exc)
    if isinstance(exc, RuntimeUnavailable):
        return 501, "runtime unavailable", str(exc)
    if isinstance(exc, SensorUnavailable):
        return 503, "sensor unavailable", str(exc)
    if isinstance(exc, ValueError):
        return 400, "invalid request", str(exc)
    if isinstance(exc, MeasurementFailed):
        return 500, "measurement failed", str(exc)
    return 500, "measurement failed", f"{type(exc).__name__}: {exc}"


def error_response(status: int, error: str, detail: object = None,
                   headers: Optional[Dict[str, str]] = None, **extra: object) -> JSONResponse:
    """JSON error body with the given status."""
    return JSONResponse({"error": error, "detail": detail, **extra}, status_code=status, headers=headers)


def _validation_detail(exc: RequestValidationError) -> list:
    """Readable 'where: what' strings for each invalid parameter."""
    return [f"{'.'.join(str(p) for p in err.get('loc', ()))}: {err.get('msg', 'invalid')}"
            for err in exc.errors()]


def install_handlers(app: FastAPI) -> None:
    """Make every error the app returns use the {"error", "detail"} shape."""

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.error, exc.detail, exc.headers, **exc.extra)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(422, "invalid request parameters", _validation_detail(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        phrase = HTTPStatus(exc.status_code).phrase.lower()
        return error_response(exc.status_code, phrase, exc.detail, getattr(exc, "headers", None))
