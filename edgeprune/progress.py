"""Progress of long phases: a small protocol the library reports to; the CLI draws it, the default ignores it."""
from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    """Told when a phase of ``total`` steps starts, how far it got, and when it ended."""

    def start(self, phase: str, total: int) -> None: ...

    def advance(self, steps: int = 1) -> None: ...

    def finish(self) -> None: ...


class NoProgress:
    """Reports nothing (library default)."""

    def start(self, phase: str, total: int) -> None:
        """Ignore the start of a phase."""

    def advance(self, steps: int = 1) -> None:
        """Ignore progress."""

    def finish(self) -> None:
        """Ignore the end of a phase."""


SILENT = NoProgress()


def point_reporter(reporter: Progress):
    """Calibration's per-point callback ``(phase, done, total, stored)`` drawn as one ``reporter`` phase per
    calibration phase ("calibrate layers", "calibrate network")."""
    state = {"phase": None, "done": 0}

    def on_point(phase: str, done: int, total: int, stored: bool = True) -> None:
        if phase != state["phase"]:
            reporter.start(f"calibrate {phase}", total)
            state.update(phase=phase, done=0)
        reporter.advance(done - state["done"])
        state["done"] = done

    return on_point
