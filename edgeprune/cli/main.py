"""The ``edgeprune`` command."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import typer
from typer.core import TyperGroup

import edgeprune
from edgeprune.cli import agent_cmd, device_cmd
from edgeprune.cli.calibrate_cmd import calibrate_command
from edgeprune.cli.compress_cmd import compress_command, demo_command
from edgeprune.cli.deepcompress_cmd import deep_compress_command
from edgeprune.cli.export_cmd import export_command
from edgeprune.cli.fit_cmd import fit_command, predict_command
from edgeprune.cli.import_cmd import import_command
from edgeprune.cli.layers_cmd import layers_command
from edgeprune.cli.models_cmd import models_command
from edgeprune.cli.output import run_guarded
from edgeprune.cli.report_cmd import report_command
from edgeprune.cli.verify_cmd import verify_command


class EdgepruneGroup(TyperGroup):
    """The top-level command: every run, usage errors included, ends in run_guarded's exit codes and messages."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        argv = list(sys.argv[1:] if args is None else args)
        code = run_guarded(lambda: super(EdgepruneGroup, self).main(argv, prog_name or "edgeprune", complete_var,
                                                                    standalone_mode=False, **extra),
                           as_json="--json" in argv)
        if standalone_mode:
            sys.exit(code)
        return code


def _version(value: bool) -> None:
    if value:
        typer.echo(f"edgeprune {edgeprune.__version__}")
        raise typer.Exit()


app = typer.Typer(cls=EdgepruneGroup, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Measure CNNs on real edge devices and prune them to a measured budget. Results go to "
                       "stdout, logs and progress to stderr; exit codes: 0 ok, 1 error, 2 usage, 3 over budget.")


@app.callback()
def _global(home: Path = typer.Option(None, "--home", envvar="EDGEPRUNE_HOME", show_envvar=True,
                                      help="Data folder for latency tables, cost models and the device registry "
                                           "(default: the per-user data folder)."),
            version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                         help="Print the version and exit.")):
    if home is not None:
        os.environ["EDGEPRUNE_HOME"] = str(home.expanduser().resolve())


app.command("calibrate")(calibrate_command)
app.command("layers")(layers_command)
app.command("fit")(fit_command)
app.command("predict")(predict_command)
app.command("models")(models_command)
app.command("import")(import_command)
app.command("compress")(compress_command)
app.command("demo")(demo_command)
app.command("deep-compress")(deep_compress_command)
app.command("export")(export_command)
app.command("verify")(verify_command)
app.command("report")(report_command)
app.add_typer(device_cmd.app, name="device")
app.add_typer(agent_cmd.app, name="agent")

if __name__ == "__main__":
    app()
