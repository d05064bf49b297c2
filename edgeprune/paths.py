"""Where edgeprune keeps its files; read from the environment at call time, never at import.

One per-user data folder (``EDGEPRUNE_HOME``, else the platform's user data dir) holds the latency tables, the
cost models and the device registry; ``EDGEPRUNE_TABLES_DIR``, ``EDGEPRUNE_MODELS_DIR`` and
``EDGEPRUNE_CONFIG_DIR`` override one of them each. The cost models shipped in the repository's ``energy_models/``
are a read-only fallback wherever edgeprune runs from.
"""
from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    """The per-user data folder (``EDGEPRUNE_HOME`` or ``--home``, else e.g. ``~/.local/share/edgeprune``)."""
    env = os.environ.get("EDGEPRUNE_HOME")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir("edgeprune", appauthor=False))


def cache_dir() -> Path:
    """Exported micro-benchmark models (``EDGEPRUNE_CACHE_DIR``, else ``~/.cache/edgeprune``); safe to delete."""
    env = os.environ.get("EDGEPRUNE_CACHE_DIR")
    if env:
        return Path(env)
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("edgeprune", appauthor=False))


def config_dir() -> Path:
    """Registered devices and groups (``EDGEPRUNE_CONFIG_DIR``, else the data folder)."""
    env = os.environ.get("EDGEPRUNE_CONFIG_DIR")
    return Path(env) if env else home()


def legacy_config_dir() -> Path:
    """Where versions before the data folder kept registered devices (``~/.config/edgeprune``)."""
    return Path(os.environ.get("XDG_CONFIG_HOME", Path.home() / ".config")) / "edgeprune"


def tables_dir() -> Path:
    """Latency tables (``EDGEPRUNE_TABLES_DIR``, else ``<home>/latency_tables``)."""
    env = os.environ.get("EDGEPRUNE_TABLES_DIR")
    return Path(env) if env else home() / "latency_tables"


def safe_name(text: str) -> str:
    """``text`` with every character other than letters, digits and ``-_.`` replaced by ``_`` (a file name)."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)


def default_table(device: str) -> Path:
    """Default SQLite table for a device name."""
    return tables_dir() / f"{safe_name(device)}.sqlite"


def models_dir() -> Path:
    """Fitted cost models, where fit writes them (``EDGEPRUNE_MODELS_DIR``, else ``<home>/cost_models``)."""
    env = os.environ.get("EDGEPRUNE_MODELS_DIR")
    return Path(env) if env else home() / "cost_models"


def shipped_models_dir() -> Path:
    """The cost models that come with the repository (read-only; may not exist in an installed package)."""
    return Path(__file__).resolve().parent.parent / "energy_models"


def models_search_path() -> list[Path]:
    """Folders searched for a cost model, first match wins: where fit writes, then the shipped ones."""
    folders = [models_dir(), shipped_models_dir()]
    return [f for i, f in enumerate(folders) if f.resolve() not in {g.resolve() for g in folders[:i]}]
