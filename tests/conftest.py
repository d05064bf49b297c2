import os
import subprocess
import sys

import pytest


@pytest.fixture(autouse=True)
def isolated_dirs(tmp_path, monkeypatch):
    """Every test gets its own data folder, cache, config, tables and cost-model directories."""
    monkeypatch.setenv("EDGEPRUNE_HOME", str(tmp_path / "home"))
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


def free_port() -> int:
    """A free TCP port on loopback."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_agent(token_file, *extra, command=("edgeprune.cli.main", "agent"), tls_ca=None):
    """A real agent process on a free loopback port, serving; returns (process, url)."""
    import time

    import httpx

    port = free_port()
    os.chmod(token_file, 0o600)  # the agent refuses a token file other users can read
    proc = subprocess.Popen([sys.executable, "-m", *command, "serve", "--port", str(port), "--token-file",
                             str(token_file), "--sensor", "estimate", *extra],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"{'https' if tls_ca else 'http'}://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if httpx.get(url + "/v1/health", timeout=1, verify=str(tls_ca) if tls_ca else True).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    pytest.fail("agent did not start: " + proc.stderr.read().decode()[-2000:])
