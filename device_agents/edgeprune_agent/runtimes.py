"""Lazy registry of inference runtimes: name -> backend class path and install hint."""
from __future__ import annotations

import importlib
import importlib.util
from typing import Dict, List, Optional, Protocol

from .errors import RuntimeUnavailable

KNOWN_RUNTIMES: Dict[str, Dict[str, object]] = {
    "onnxruntime": {
        "class": "edgeprune_agent.backends.ort:OrtModel",
        "modules": ("onnxruntime",),
        "err": "pip install onnxruntime",
    },
    "litert": {
        "class": "edgeprune_agent.backends.litert:LiteRtModel",
        "modules": ("ai_edge_litert", "tflite_runtime"),
        "err": "pip install ai-edge-litert",
    },
}


class LoadedModel(Protocol):
    """What every backend class provides once a model is loaded."""

    name: str
    inputs: Dict[str, Dict[str, object]]

    def run(self) -> None:
        """Run one inference."""


def known_runtimes() -> List[str]:
    """Names of all runtimes the agent knows about, installed or not."""
    return sorted(KNOWN_RUNTIMES)


def _entry(name: str) -> Dict[str, object]:
    """Registry entry for `name`, or ValueError for an unknown runtime."""
    if name not in KNOWN_RUNTIMES:
        raise ValueError(f"unknown runtime '{name}'; known runtimes: {', '.join(known_runtimes())}")
    return KNOWN_RUNTIMES[name]


def _installed(modules) -> bool:
    """True when any of the importable module names is present (without importing it)."""
    for module in modules:
        try:
            if importlib.util.find_spec(module) is not None:
                return True
        except (ImportError, ValueError):
            continue
    return False


def check_available(name: str) -> None:
    """Raise ValueError for unknown names and RuntimeUnavailable (with install hint) when not installed."""
    entry = _entry(name)
    if not _installed(entry["modules"]):
        raise RuntimeUnavailable(f"runtime '{name}' is not installed on this device: {entry['err']}")


def get_runtime_class(name: str):
    """Import and return the backend class for `name`."""
    check_available(name)
    module_name, _, attr = str(_entry(name)["class"]).partition(":")
    return getattr(importlib.import_module(module_name), attr)


def load_model(name: str, model_bytes: bytes, threads: int = 1) -> LoadedModel:
    """Load `model_bytes` with runtime `name`; raises ModelInvalid or RuntimeUnavailable."""
    return get_runtime_class(name)(model_bytes, threads)


def runtime_version(name: str) -> Optional[str]:
    """Installed version of runtime `name`, or None when it is not installed."""
    try:
        return get_runtime_class(name).version()
    except RuntimeUnavailable:
        return None


def runtime_versions() -> Dict[str, str]:
    """Versions of the runtimes installed on this device."""
    versions = {}
    for name in known_runtimes():
        version = runtime_version(name)
        if version is not None:
            versions[name] = version
    return versions
