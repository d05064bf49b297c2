"""``edgeprune report``: an HTML page of a compress run directory."""
from __future__ import annotations

from pathlib import Path

import typer

from edgeprune.cli.common import JsonOpt
from edgeprune.cli.output import Output


def report_command(run_dir: Path = typer.Argument(..., help="The --out directory of `edgeprune compress`."),
                   out: Path = typer.Option(None, "--out", "-o", help="HTML file (default: RUN_DIR/report.html)."),
                   verify: Path = typer.Option(None, "--verify", help="`edgeprune verify --json` output (default: "
                                               "RUN_DIR/verify.json when it exists)."),
                   as_json: bool = JsonOpt):
    """Write one self-contained HTML page (plots inlined) of a compress run, every number with its source."""
    from edgeprune.report import write_report

    o = Output(as_json)
    path = write_report(run_dir, out, verify)
    o.emit({"report": str(path)})
    o.print(f"wrote {path}")
