"""edgeprune device agent: run models with onnxruntime or LiteRT and report latency and energy."""
from __future__ import annotations

from ._version import __version__
from .errors import AgentError, ModelInvalid, RuntimeUnavailable, SensorUnavailable
from .fingerprint import device_info
from .measure import measure_model

__all__ = ["__version__", "measure_model", "device_info", "create_app", "AgentError",
           "ModelInvalid", "RuntimeUnavailable", "SensorUnavailable"]


def __getattr__(name: str):
    """Import the FastAPI app factory only when asked for, so in-process use skips the web stack."""
    if name == "create_app":
        from .server import create_app
        return create_app
    raise AttributeError(f"module 'edgeprune_agent' has no attribute {name!r}")
