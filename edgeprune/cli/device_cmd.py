"""``edgeprune device add|list|check|remove|discover|group``: the devices this host can measure on."""
from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import typer
from rich.table import Table

from edgeprune.cli.common import JsonOpt
from edgeprune.cli.output import Output
from edgeprune.measure.registry import (LOCAL, DeviceConfigError, add_android_device, add_device, add_farm_device,
                                        add_group, load_groups, load_registry, measurement_warnings, open_device,
                                        remove_device, remove_group)

app = typer.Typer(help="Register and inspect measurement devices.", no_args_is_help=True)
group_app = typer.Typer(help="Name fleets of devices of one hardware class.", no_args_is_help=True)
app.add_typer(group_app, name="group")


@app.command("add")
def add(name: str = typer.Argument(..., help="Name to use with --device."),
        url: str = typer.Option(None, help="Agent URL, e.g. http://192.168.1.20:8765"),
        token_file: Path = typer.Option(None, help="File holding the agent's bearer token."),
        adb: str = typer.Option(None, "--adb", help="Android: adb serial (USB) or host:port (adb over Wi-Fi)."),
        benchmark_binary: Path = typer.Option(None, help="Android: TFLite benchmark_model built for the phone."),
        cores: str = typer.Option("f0", help="Android: taskset CPU mask the benchmark is pinned to."),
        use_xnnpack: bool = typer.Option(False, help="Android: let benchmark_model use XNNPACK."),
        broker: str = typer.Option(None, help="Farm: redis:// or rediss:// broker URL the workers pull from."),
        hardware_class: str = typer.Option(None, help="Farm: class id (default: the one class with live workers)."),
        password_file: Path = typer.Option(None, help="Farm: file holding the broker password."),
        ca_cert: Path = typer.Option(None, help="HTTPS agent: CA (or the agent's own) certificate to trust."),
        tls_fingerprint: str = typer.Option(None, help="HTTPS agent: pin this SHA-256 certificate fingerprint "
                                                        "(printed by `edgeprune-agent serve --tls-cert`)."),
        as_json: bool = JsonOpt):
    """Register a device agent (--url/--token-file), an Android phone (--adb/...) or a farm (--broker)."""
    out = Output(as_json)
    if broker is not None:
        if url is not None or adb is not None:
            raise DeviceConfigError("a farm needs --broker URL only (no --url or --adb)")
        entry = add_farm_device(name, broker, hardware_class, password_file)
        where = f"farm {broker}, hardware class {entry['hardware_class']}"
    elif adb is not None:
        if benchmark_binary is None or url is not None:
            raise DeviceConfigError("an Android device needs --adb SERIAL and --benchmark-binary PATH (no --url)")
        entry = add_android_device(name, adb, benchmark_binary, cores, use_xnnpack)
        where = f"adb {adb} with {entry['benchmark_binary']}"
    else:
        if url is None or token_file is None:
            raise DeviceConfigError("an agent needs --url and --token-file (or use --adb for a phone)")
        entry = add_device(name, url, token_file, ca_cert, tls_fingerprint)
        where = f"{entry['url']} (token from {entry['token_file']})"
        if url.startswith("http://") and urlsplit(url).hostname not in ("127.0.0.1", "localhost", "::1"):
            out.warn("plain HTTP: the token and models cross the network unencrypted; "
                      "serve the agent with --tls-cert/--tls-key and add it with an https:// URL")
    out.emit({"name": name, **entry})
    out.print(f"added device [bold]{name}[/] → {where}")


def _where(entry: dict) -> str:
    """Short description of how a device is reached."""
    if entry.get("kind") == "android":
        return f"adb {entry['serial']} (cores {entry.get('cores', 'f0')})"
    if entry.get("kind") == "farm":
        return f"farm {entry['broker']} ({entry['hardware_class']})"
    return entry["url"]


@app.command("list")
def list_devices(as_json: bool = JsonOpt):
    """List registered devices (``local`` is always there) and groups."""
    out = Output(as_json)
    devices = {LOCAL: {"url": "in-process", "token_file": None}, **load_registry()}
    groups = load_groups()
    out.emit({"devices": [{"name": n, **e} for n, e in devices.items()], "groups": groups})
    table = Table("name", "reached at", "token file")
    for n, e in devices.items():
        table.add_row(n, _where(e), e.get("token_file") or "-")
    out.print(table)
    for g, members in groups.items():
        out.print(f"group [bold]{g}[/]: {', '.join(members)}")


@app.command("remove")
def remove(name: str, as_json: bool = JsonOpt):
    """Forget a registered device."""
    out = Output(as_json)
    remove_device(name)
    out.emit({"removed": name})
    out.print(f"removed device {name}")


@app.command("check")
def check(name: str = typer.Argument(LOCAL), as_json: bool = JsonOpt):
    """Show a device's fingerprint and warn about conditions that spoil measurements."""
    out = Output(as_json)
    info = open_device(name).info()
    warnings = measurement_warnings(info)
    out.emit({"device": name, "info": info, "warnings": warnings})
    table = Table("field", "value", title=f"device {name}")
    for key in ("fingerprint_id", "hostname", "device_model", "cpu_model", "arch", "cores_logical",
                "cores_physical", "memory_total_bytes", "os", "runtime_versions", "conditions",
                "available_sensors", "energy_sensor"):
        if key in info:
            table.add_row(key, str(info[key]))
    out.print(table)
    for w in warnings:
        out.warn(w)


@app.command("discover")
def discover_cmd(timeout: float = typer.Option(3.0, help="Seconds to listen for announcements."),
                 interface: list[str] = typer.Option(None, help="Only this local IPv4 address (repeatable)."),
                 as_json: bool = JsonOpt):
    """List agents announcing themselves with zeroconf (started with `edgeprune-agent serve --advertise`)."""
    from edgeprune.measure.discovery import discover, mark_registered

    out = Output(as_json)
    found = mark_registered(discover(timeout, interface or None), load_registry())
    out.emit({"agents": found})
    table = Table("name", "url", "fingerprint", "cpu", "sensor", "registered as")
    for a in found:
        p = a["properties"]
        table.add_row(a["name"], a["url"] or "-", p.get("fingerprint_id", "-"), p.get("cpu_model", "-"),
                      p.get("sensor", "-"), a["registered_as"] or "-")
    out.print(table if found else "no agents answered")
    for a in found:
        if not a["registered_as"]:
            out.print(f"  edgeprune device add {a['name']} --url {a['url']} --token-file PATH")


@group_app.command("add")
def group_add(name: str, members: list[str] = typer.Argument(..., help="Registered device names."),
              as_json: bool = JsonOpt):
    """Name a fleet; use it as --device NAME (members must share a fingerprint when calibrating)."""
    out = Output(as_json)
    members = add_group(name, members)
    out.emit({"group": name, "members": members})
    out.print(f"group [bold]{name}[/]: {', '.join(members)}")


@group_app.command("remove")
def group_remove(name: str, as_json: bool = JsonOpt):
    """Forget a group (its devices stay registered)."""
    out = Output(as_json)
    remove_group(name)
    out.emit({"removed": name})
    out.print(f"removed group {name}")
