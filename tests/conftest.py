import os
import subprocess
import sys

import pytest


@pytest.fixture(autouse=True)
def isolated_dirs(tmp_path, monkeypatch):
    """Every test gets its own cache, config and tables directories."""
    monkeypatch.setenv("EDGEPRUNE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("EDGEPRUNE_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("EDGEPRUNE_TABLES_DIR", str(tmp_path / "tables"))
    monkeypatch.setenv("EDGEPRUNE_MODELS_DIR", str(tmp_path / "models"))
    return tmp_path


FAST = ["--warmup", "1", "--min-repeats", "3", "--min-duration", "0.01"]


def run_cli(*args, check=True, timeout=300, env=None):
    """Run the real ``edgeprune`` CLI in a subprocess."""
    proc = subprocess.run([sys.executable, "-m", "edgeprune.cli.main", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})})
    if check and proc.returncode != 0:
        raise AssertionError(f"edgeprune {' '.join(map(str, args))} failed ({proc.returncode}):\n{proc.stderr}")
    return proc
