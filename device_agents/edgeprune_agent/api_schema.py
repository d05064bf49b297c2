"""OpenAPI declarations of the agent's API: bodies, answers and every error status with its schema."""
from __future__ import annotations

from typing import Any, Dict, Optional

from pydantic import BaseModel, ConfigDict

from .measure import limits


class ErrorBody(BaseModel):
    """Every error answer: a short error name and a detail saying what to do."""

    model_config = ConfigDict(extra="allow")
    error: str
    detail: Any = None
    job_id: Optional[str] = None


class JobAccepted(BaseModel):
    """202 answer to a measurement queued with wait=false."""

    job_id: str
    status: str
    deadline_s: float
    ahead_s: float


class JobView(BaseModel):
    """State of one job; result when done, error when failed or cancelled."""

    model_config = ConfigDict(extra="allow")
    job_id: str
    status: str
    deadline_s: float
    running_s: Optional[float] = None
    ran_s: Optional[float] = None
    result: Optional[Dict[str, Any]] = None
    error: Optional[ErrorBody] = None


ERRORS = {
    400: "invalid settings or an empty body",
    401: "missing or wrong bearer token",
    404: "unknown job",
    408: "the request body did not arrive in time",
    409: "the job was cancelled, or had already finished",
    413: "the model is larger than the upload limit",
    422: "the model cannot be loaded or run, or ran past its deadline; or a parameter has the wrong type",
    500: "unexpected failure inside the measurement",
    501: "the requested runtime is not installed on this device",
    503: "queue full (retry after Retry-After seconds) or energy sensor unavailable",
}


def error_responses(*codes: int) -> Dict[int, Dict[str, Any]]:
    """OpenAPI `responses` entries for these error statuses, all with the ErrorBody schema."""
    return {code: {"model": ErrorBody, "description": ERRORS[code]} for code in codes}


MEASURE_BODY = {"requestBody": {"required": True, "description": "the model file (ONNX or TFLite) as raw bytes",
                                "content": {"application/octet-stream": {"schema": {"type": "string",
                                                                                    "format": "binary"}}}}}

MEASURE_RESPONSES: Dict[int, Dict[str, Any]] = {
    200: {"description": "the measurement (wait=true)",
          "content": {"application/json": {"schema": {"type": "object"}}}},
    202: {"model": JobAccepted, "description": "queued (wait=false); poll /v1/jobs/{job_id}"},
    **error_responses(400, 401, 408, 409, 413, 422, 500, 501, 503),
}


def bounds(name: str) -> Dict[str, Any]:
    """JSON-schema bounds of a measurement setting, for its query parameter's documentation."""
    rng = limits()[name]
    schema: Dict[str, Any] = {"maximum": rng["max"]}
    if "min" in rng:
        schema["minimum"] = rng["min"]
    else:
        schema["exclusiveMinimum"] = rng["min_exclusive"]
    return schema


def describe_bounds(name: str) -> str:
    """One-line allowed range of a setting."""
    rng = limits()[name]
    low = f"[{rng['min']}" if "min" in rng else f"({rng['min_exclusive']}"
    return f"allowed range {low}, {rng['max']}]; outside it the answer is 400"
