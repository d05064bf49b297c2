"""One place that decides how a command speaks: rich text on stderr, or exactly one JSON object on stdout."""
from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from typing import Iterator

import typer
from rich.console import Console

from edgeprune.errors import EdgepruneError

# Errors a user can act on: shown as one clear line (or a JSON error object), exit code 1.
USER_ERRORS: tuple[type[BaseException], ...] = (EdgepruneError, ValueError, OSError)


class Output:
    """Human output goes to stderr; with ``--json`` stdout carries a single JSON object and nothing else."""

    def __init__(self, as_json: bool):
        self.as_json = as_json
        self.console = Console(stderr=True, quiet=as_json)

    def print(self, *args, **kw) -> None:
        self.console.print(*args, **kw)

    def emit(self, obj: dict) -> None:
        if self.as_json:
            sys.stdout.write(json.dumps(obj, default=str) + "\n")
            sys.stdout.flush()

    @contextmanager
    def errors(self) -> Iterator[None]:
        """Turn user-facing failures into a clear message and exit status 1, never a traceback."""
        try:
            yield
        except KeyboardInterrupt:
            self._fail("interrupted", 130)
        except USER_ERRORS + _agent_errors() as exc:
            self._fail(f"{type(exc).__name__}: {exc}", 1)

    def _fail(self, message: str, code: int) -> None:
        if self.as_json:
            self.emit({"error": message})
        else:
            Console(stderr=True).print(f"[bold red]error:[/] {message}")
        raise typer.Exit(code)


def _agent_errors() -> tuple[type[BaseException], ...]:
    from edgeprune_agent import AgentError

    return (AgentError,)


class RichProgress:
    """One rich progress bar on stderr (step/total, elapsed, ETA) for the phase that runs now; also under --json."""

    def __init__(self):
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                   TimeRemainingColumn)

        self._bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                             TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                             console=Console(stderr=True), transient=False)
        self._task = None

    def start(self, phase: str, total: int) -> None:
        """Show a new bar for ``phase`` (ending the previous one)."""
        self.finish()
        self._bar.start()
        self._task = self._bar.add_task(phase, total=max(1, total))

    def advance(self, steps: int = 1) -> None:
        """Move the current bar on."""
        if self._task is not None:
            self._bar.advance(self._task, steps)

    def finish(self) -> None:
        """Close the current bar."""
        if self._task is not None:
            self._bar.stop()
            self._bar.remove_task(self._task)
            self._task = None
