"""``edgeprune agent serve``: run the device agent (same as the agent package's ``edgeprune-agent serve``)."""
from __future__ import annotations

from pathlib import Path

import typer

from edgeprune.cli.output import Output

app = typer.Typer(help="Run the device agent on this machine.", no_args_is_help=True)


@app.command("serve")
def serve(host: str = typer.Option("127.0.0.1", help="Bind address; loopback by default."),
          port: int = typer.Option(8765),
          token_file: Path = typer.Option(..., help="Bearer token file (created with a random token if missing)."),
          max_upload_mb: float = typer.Option(64.0, help="Largest model accepted."),
          sensor: str = typer.Option("auto", help="auto, rapl, estimate or none."),
          sysfs_root: str = typer.Option("/", help="Root of the sysfs tree to read sensors from."),
          estimate_watts_per_core: float = typer.Option(10.0, help="Power per busy core for the estimate.")):
    """Serve /v1/health, /v1/info, /v1/measure and /v1/jobs until interrupted."""
    from edgeprune_agent.cli import serve as agent_serve

    with Output(False).errors():
        agent_serve(host=host, port=port, token_file=str(token_file), max_upload_mb=max_upload_mb,
                    sensor=sensor, sysfs_root=sysfs_root, estimate_watts_per_core=estimate_watts_per_core)
