"""The ``edgeprune`` command."""
from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

import typer
from typer.core import TyperGroup

import edgeprune
from edgeprune.cli.output import run_guarded

# Each command's module is imported only when that command runs (most pull in torch, seconds to import), so
# `edgeprune --version`, `device list` or a usage error answer at once. name → (module, function or sub-app).
COMMANDS = {
    "calibrate": ("calibrate_cmd", "calibrate_command"), "layers": ("layers_cmd", "layers_command"),
    "fit": ("fit_cmd", "fit_command"), "predict": ("fit_cmd", "predict_command"),
    "models": ("models_cmd", "models_command"), "import": ("import_cmd", "import_command"),
    "compress": ("compress_cmd", "compress_command"), "demo": ("compress_cmd", "demo_command"),
    "deep-compress": ("deepcompress_cmd", "deep_compress_command"), "export": ("export_cmd", "export_command"),
    "verify": ("verify_cmd", "verify_command"), "report": ("report_cmd", "report_command"),
    "device": ("device_cmd", "app"), "agent": ("agent_cmd", "app"),
}


def load_command(name: str):
    """The click command (or group) for ``name``, importing its module now."""
    module, attr = COMMANDS[name]
    target = getattr(importlib.import_module(f"edgeprune.cli.{module}"), attr)
    if isinstance(target, typer.Typer):
        group = typer.main.get_group(target)
        group.name = name
        return group
    single = typer.Typer()
    single.command(name)(target)
    return typer.main.get_command(single)


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

    def list_commands(self, ctx):
        return list(COMMANDS)

    def get_command(self, ctx, name):
        return load_command(name) if name in COMMANDS else super().get_command(ctx, name)


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


if __name__ == "__main__":
    app()
