"""Find and run the device's helper commands (vcgencmd, tegrastats), optionally from a fake bin directory."""
from __future__ import annotations

import os
import shutil
import subprocess
from typing import List, Optional, Sequence

from .errors import SensorUnavailable


def find_command(name: str, bin_dir: Optional[str] = None) -> Optional[str]:
    """Path of `name` in bin_dir (when given) else on PATH; None when absent."""
    if bin_dir:
        candidate = os.path.join(bin_dir, name)
        return candidate if os.access(candidate, os.X_OK) else None
    return shutil.which(name)


def run_command(args: Sequence[str], bin_dir: Optional[str] = None, timeout_s: float = 5.0) -> str:
    """Run a helper command and return its stdout; SensorUnavailable when missing or failing."""
    path = find_command(args[0], bin_dir)
    if path is None:
        where = bin_dir or "PATH"
        raise SensorUnavailable(f"command {args[0]!r} not found in {where}")
    try:
        proc = subprocess.run([path, *args[1:]], capture_output=True, text=True, timeout=timeout_s,
                              check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SensorUnavailable(f"{args[0]} failed: {exc}") from exc
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip()[:200]
        raise SensorUnavailable(f"{' '.join(args)} exited {proc.returncode}: {detail}")
    return proc.stdout


def spawn_command(args: List[str], bin_dir: Optional[str] = None) -> subprocess.Popen:
    """Start a long-running helper (e.g. tegrastats) with line-buffered text stdout."""
    path = find_command(args[0], bin_dir)
    if path is None:
        raise SensorUnavailable(f"command {args[0]!r} not found in {bin_dir or 'PATH'}")
    try:
        return subprocess.Popen([path, *args[1:]], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                text=True, bufsize=1)
    except OSError as exc:
        raise SensorUnavailable(f"cannot start {args[0]}: {exc}") from exc
