"""How every command speaks: results on stdout (or exactly one JSON object with ``--json``), logs, warnings and
progress on stderr, and one error handler that turns any failure into a message, a hint and an exit code."""
from __future__ import annotations

import json
import os
import sys
import traceback
from contextlib import redirect_stdout
from typing import Callable

import typer
from rich.console import Console
from rich.markup import escape

from edgeprune.errors import EdgepruneError

OK, ERROR, USAGE, OVER_BUDGET, INTERRUPTED = 0, 1, 2, 3, 130
PIPE_WIDTH = 10_000  # a table piped to a file or another program is never cut to the terminal's 80 columns
_json_stdout: list = []  # the real stdout while a --json command runs; anything else printed goes to stderr
_live_bars: set = set()  # bars drawing now; a command that fails mid-phase leaves none behind (nor a hidden cursor)


def _json_stream():
    return _json_stdout[-1] if _json_stdout else sys.stdout


def _write_json(obj: dict) -> None:
    out = _json_stream()
    out.write(json.dumps(obj, default=str) + "\n")
    out.flush()


def _results_console(quiet: bool) -> Console:
    piped = not sys.stdout.isatty()  # COLUMNS (often set by shells and test runners) would cut the table again
    return Console(quiet=quiet, width=PIPE_WIDTH if piped else None, soft_wrap=piped)


class Output:
    """Results go to stdout, logs to stderr; with ``--json`` stdout carries one JSON object and nothing else."""

    def __init__(self, as_json: bool):
        self.as_json = as_json
        self.results = _results_console(quiet=as_json)
        self.console = Console(stderr=True)  # logs and warnings, shown under --json too (stdout stays clean)

    def print(self, *args, **kw) -> None:
        """A result (table, summary line): stdout, unless --json."""
        self.results.print(*args, **kw)

    def log(self, *args, **kw) -> None:
        """What is happening, warnings: stderr."""
        self.console.print(*args, **kw)

    def warn(self, message: str) -> None:
        """A warning line on stderr."""
        self.console.print(f"[bold yellow]warning:[/] {escape(message)}")

    def emit(self, obj: dict) -> None:
        """The command's one JSON object (only with --json)."""
        if self.as_json:
            _write_json(obj)


def _user_errors() -> tuple[type[BaseException], ...]:
    """Failures a user can act on: shown as their message, without the exception's class name."""
    from edgeprune_agent import AgentError

    return EdgepruneError, ValueError, OSError, AgentError


def describe_error(exc: BaseException) -> tuple[str, str | None]:
    """(what is wrong, what to do) for a failure."""
    hint = getattr(exc, "hint", None)
    if isinstance(exc, FileNotFoundError) and exc.filename:
        return f"no such file: {exc.filename}", hint or "check the path"
    if isinstance(exc, PermissionError) and exc.filename:
        return f"permission denied: {exc.filename}", hint or "choose a folder you can write (e.g. --home DIR)"
    if isinstance(exc, _user_errors()):
        return str(exc) or type(exc).__name__, hint
    return (f"internal error ({type(exc).__name__}: {exc})",
            "this is a bug in edgeprune; rerun with EDGEPRUNE_DEBUG=1 for the traceback and report it")


def fail(message: str, hint: str | None, code: int, as_json: bool) -> int:
    """Say what went wrong (a JSON error object on stdout with --json, else a line on stderr); return ``code``."""
    if as_json:
        _write_json({"error": message, "hint": hint, "exit_code": code})
    else:
        err = Console(stderr=True, highlight=False, soft_wrap=True)
        err.print(f"[bold red]error:[/] {escape(message)}")
        if hint:
            err.print(f"[dim]hint:[/] {escape(hint)}")
    return code


def _click_errors() -> tuple[type[Exception], type[Exception]]:
    """(UsageError, ClickException) of the click that typer runs on (recent typer versions vendor their own)."""
    mro = {c.__name__: c for c in typer.BadParameter.__mro__}
    return mro["UsageError"], mro["ClickException"]


def run_guarded(invoke: Callable[[], object], as_json: bool) -> int:
    """Run the command line; every outcome becomes an exit code (0 ok, 1 error, 2 usage, 3 over budget). With
    --json, whatever a library prints goes to stderr, so stdout carries the command's one JSON object alone."""
    if not as_json:
        return _run(invoke, False)
    _json_stdout.append(sys.stdout)
    try:
        with redirect_stdout(sys.stderr):
            return _run(invoke, True)
    finally:
        _json_stdout.pop()


def _run(invoke: Callable[[], object], as_json: bool) -> int:
    usage_error, click_exception = _click_errors()
    try:
        try:
            rv = invoke()
        finally:
            for bar in list(_live_bars):
                bar.finish()
    except usage_error as exc:
        if not as_json:
            from typer import rich_utils

            rich_utils.rich_format_error(exc)
            return USAGE
        return fail(exc.format_message(), "see --help", USAGE, True)
    except click_exception as exc:
        return fail(exc.format_message(), None, exc.exit_code, as_json)
    except (typer.Abort, KeyboardInterrupt):
        return fail("interrupted", None, INTERRUPTED, as_json)
    except Exception as exc:  # noqa: BLE001 - the one place every failure is reported
        if os.environ.get("EDGEPRUNE_DEBUG"):
            traceback.print_exc()
        return fail(*describe_error(exc), ERROR, as_json)
    code = rv if isinstance(rv, int) and not isinstance(rv, bool) else OK
    if code == INTERRUPTED:  # typer turns Ctrl-C into exit code 130 before it reaches here
        return fail("interrupted", "calibrate and compress resume where they stopped when run again", code, as_json)
    return code


class RichProgress:
    """One rich progress bar on stderr (step/total, elapsed, ETA) for the phase that runs now; also under --json."""

    def __init__(self, console: Console | None = None):
        """``console``: the stderr console the command logs to, so its lines print above the bar, not through it."""
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                   TimeRemainingColumn)

        self._bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                             TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                             console=console or Console(stderr=True), transient=False,
                             # stdout is the results' (and --json's) alone: never route it through the bar
                             redirect_stdout=False, redirect_stderr=False)
        self._task = None

    def start(self, phase: str, total: int) -> None:
        """Show a new bar for ``phase`` (ending the previous one)."""
        self.finish()
        self._bar.start()
        self._task = self._bar.add_task(phase, total=max(1, total))
        _live_bars.add(self)

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
            _live_bars.discard(self)
