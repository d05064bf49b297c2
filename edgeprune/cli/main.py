"""The ``edgeprune`` command."""
from __future__ import annotations

import typer

from edgeprune.cli import agent_cmd, device_cmd
from edgeprune.cli.calibrate_cmd import calibrate_command
from edgeprune.cli.compress_cmd import compress_command, demo_command
from edgeprune.cli.deepcompress_cmd import deep_compress_command
from edgeprune.cli.export_cmd import export_command
from edgeprune.cli.fit_cmd import fit_command, predict_command
from edgeprune.cli.import_cmd import import_command
from edgeprune.cli.verify_cmd import verify_command
from edgeprune.cli.layers_cmd import layers_command
from edgeprune.cli.report_cmd import report_command

app = typer.Typer(help="Measure CNNs on real edge devices and prune them to a measured budget.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
app.command("calibrate")(calibrate_command)
app.command("layers")(layers_command)
app.command("fit")(fit_command)
app.command("predict")(predict_command)
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
