"""Tolerant readers for sysfs/procfs files: None instead of an exception when a file is absent."""
from __future__ import annotations

from typing import Optional


def read_text(path: str) -> Optional[str]:
    """Stripped file content, or None when the file is absent or unreadable."""
    try:
        with open(path, "r", encoding="utf-8", errors="replace") as handle:
            return handle.read().strip()
    except OSError:
        return None


def read_int(path: str) -> Optional[int]:
    """Integer file content, or None."""
    text = read_text(path)
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None
