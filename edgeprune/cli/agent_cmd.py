"""``edgeprune agent ...``: the device agent's own command line (``edgeprune-agent``), reachable from here."""
from __future__ import annotations

import os
import sys

import typer

app = typer.Typer(help="Run the device agent on this machine.", no_args_is_help=True)
PASS_THROUGH = {"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []}


def _forward(subcommand: str, ctx: typer.Context) -> None:
    from edgeprune_agent.cli import main as agent_main

    code = agent_main([subcommand, *ctx.args])
    raise typer.Exit(code or 0)


@app.command("serve", context_settings=PASS_THROUGH)
def serve(ctx: typer.Context):
    """Serve /v1/health, /v1/info, /v1/measure and /v1/jobs (options as `edgeprune-agent serve --help`)."""
    # Replace this process by a plain agent: it then carries no torch, and the job processes it forks do not
    # re-import this CLI (multiprocessing re-imports the __main__ module in every child).
    os.execv(sys.executable, [sys.executable, "-m", "edgeprune_agent", "serve", *ctx.args])


@app.command("info", context_settings=PASS_THROUGH)
def info(ctx: typer.Context):
    """Print this device's description as JSON (as `edgeprune-agent info`)."""
    _forward("info", ctx)
