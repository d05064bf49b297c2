"""``edgeprune device add|list|check|remove``: the agents this host can measure on."""
from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from edgeprune.cli.common import JsonOpt
from edgeprune.cli.output import Output
from edgeprune.measure.registry import LOCAL, add_device, load_registry, measurement_warnings, open_device, \
    remove_device

app = typer.Typer(help="Register and inspect measurement devices.", no_args_is_help=True)


@app.command("add")
def add(name: str = typer.Argument(..., help="Name to use with --device."),
        url: str = typer.Option(..., help="Agent URL, e.g. http://192.168.1.20:8765"),
        token_file: Path = typer.Option(..., help="File holding the agent's bearer token."),
        as_json: bool = JsonOpt):
    """Register a device agent."""
    out = Output(as_json)
    with out.errors():
        entry = add_device(name, url, token_file)
        out.emit({"name": name, **entry})
        out.print(f"added device [bold]{name}[/] → {entry['url']} (token from {entry['token_file']})")


@app.command("list")
def list_devices(as_json: bool = JsonOpt):
    """List registered devices (``local`` is always there)."""
    out = Output(as_json)
    with out.errors():
        devices = {LOCAL: {"url": "in-process", "token_file": None}, **load_registry()}
        out.emit({"devices": [{"name": n, **e} for n, e in devices.items()]})
        table = Table("name", "url", "token file")
        for n, e in devices.items():
            table.add_row(n, e["url"], e["token_file"] or "-")
        out.print(table)


@app.command("remove")
def remove(name: str, as_json: bool = JsonOpt):
    """Forget a registered device."""
    out = Output(as_json)
    with out.errors():
        remove_device(name)
        out.emit({"removed": name})
        out.print(f"removed device {name}")


@app.command("check")
def check(name: str = typer.Argument(LOCAL), as_json: bool = JsonOpt):
    """Show a device's fingerprint and warn about conditions that spoil measurements."""
    out = Output(as_json)
    with out.errors():
        info = open_device(name).info()
        warnings = measurement_warnings(info)
        out.emit({"device": name, "info": info, "warnings": warnings})
        table = Table("field", "value", title=f"device {name}")
        for key in ("fingerprint_id", "hostname", "cpu_model", "arch", "cores_logical", "cores_physical",
                    "memory_total_bytes", "os", "runtime_versions", "conditions", "available_sensors"):
            if key in info:
                table.add_row(key, str(info[key]))
        out.print(table)
        for w in warnings:
            out.print(f"[yellow]warning:[/] {w}")
