"""Where edgeprune keeps its files; read from the environment at call time, never at import."""
from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """Exported micro-benchmark models (``EDGEPRUNE_CACHE_DIR``, else ``~/.cache/edgeprune``)."""
    env = os.environ.get("EDGEPRUNE_CACHE_DIR")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "edgeprune"


def config_dir() -> Path:
    """Registered devices (``EDGEPRUNE_CONFIG_DIR``, else ``~/.config/edgeprune``)."""
    env = os.environ.get("EDGEPRUNE_CONFIG_DIR")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CONFIG_HOME", Path.home() / ".config")) / "edgeprune"


def tables_dir() -> Path:
    """Latency tables (``EDGEPRUNE_TABLES_DIR``, else ``./latency_tables``)."""
    return Path(os.environ.get("EDGEPRUNE_TABLES_DIR", "latency_tables"))


def default_table(device: str) -> Path:
    """Default SQLite table for a device name."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in device)
    return tables_dir() / f"{safe}.sqlite"


def models_dir() -> Path:
    """Fitted cost models (``EDGEPRUNE_MODELS_DIR``, else ``./energy_models``)."""
    return Path(os.environ.get("EDGEPRUNE_MODELS_DIR", "energy_models"))
