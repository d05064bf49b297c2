"""Importing a user's Python file (a model builder or a data loader) under a unique module name."""
from __future__ import annotations

import hashlib
import importlib.util
import itertools
import sys
from pathlib import Path

_counter = itertools.count()


def import_user_file(path: Path, prefix: str, error: type[Exception]) -> object:
    """Import ``path`` as a fresh module; any failure becomes ``error`` with the cause attached."""
    name = f"{prefix}_{hashlib.sha1(str(path).encode()).hexdigest()[:10]}_{next(_counter)}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise error(f"cannot import {path} as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    # User code can raise anything while importing; report it with the cause attached.
    except Exception as exc:
        del sys.modules[name]
        raise error(f"importing {path} failed: {type(exc).__name__}: {exc}") from exc
    return module
