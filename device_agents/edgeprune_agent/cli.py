"""Command line: `edgeprune-agent serve|info|measure|worker`."""
from __future__ import annotations

import argparse
import json
import os
import secrets
import socket
import stat
import sys
from pathlib import Path
from typing import List, Optional

from ._version import __version__
from .energy import EnergyProtocol
from .errors import AgentError
from .runner import SETUP_S
from .sensors import CHOICES as SENSOR_CHOICES

BODY_IDLE_TIMEOUT_S = 10.0

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


class CliError(AgentError):
    """A user-facing error that ends the command with exit code 2."""


def load_or_create_token(token_file: Optional[str], allow_readable: bool = False) -> str:
    """Read and strip the token file; create it (random token, mode 0600) when the path does not exist.

    A token file other users can read is refused unless ``allow_readable``.
    """
    if not token_file:
        raise CliError("--token-file is required: the agent refuses to run without a bearer token "
                       "(name a new path and a random token is generated there)")
    path = Path(token_file).expanduser()
    if not path.exists():
        token = secrets.token_urlsafe(32)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(token + "\n")
        print(f"edgeprune-agent: generated a new token in {path} (mode 0600); "
              "copy it to the host to connect", file=sys.stderr)
        return token
    if path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        if not allow_readable:
            raise CliError(f"token file {path} is readable by other users: chmod 600 {path} "
                           "(or pass --allow-readable-token-file)")
        print(f"edgeprune-agent: warning: {path} is readable by other users; chmod 600 it",
              file=sys.stderr)
    token = path.read_text(encoding="utf-8").strip()
    if not token:
        raise CliError(f"token file {path} is empty")
    return token


def cert_fingerprint(cert_file: str) -> str:
    """SHA-256 fingerprint of the first certificate in a PEM file, as the host's --tls-fingerprint wants it."""
    import hashlib
    import ssl

    text = Path(cert_file).read_text(encoding="ascii")
    start = text.find("-----BEGIN CERTIFICATE-----")
    end = text.find("-----END CERTIFICATE-----")
    if start < 0 or end < 0:
        raise CliError(f"{cert_file} holds no PEM certificate")
    der = ssl.PEM_cert_to_DER_cert(text[start:end + len("-----END CERTIFICATE-----")])
    return "sha256:" + hashlib.sha256(der).hexdigest()


def serve(host: str = "127.0.0.1", port: int = 8765, token_file: Optional[str] = None,
          max_upload_mb: float = 64, sensor: str = "auto", sysfs_root: str = "/",
          estimate_watts_per_core: float = 10.0, bin_dir: Optional[str] = None,
          energy_protocol: Optional[EnergyProtocol] = None, advertise_name: Optional[str] = None,
          sensor_options: Optional[dict] = None, tls_cert: Optional[str] = None, tls_key: Optional[str] = None,
          allow_readable_token: bool = False, max_queued_mb: float = 256, job_memory_mb: Optional[float] = None,
          job_setup_s: float = SETUP_S, body_timeout_s: float = BODY_IDLE_TIMEOUT_S) -> None:
    """Run the agent's HTTP(S) server until interrupted."""
    import uvicorn

    from .server import create_app

    if (tls_cert is None) != (tls_key is None):
        raise CliError("TLS needs both --tls-cert and --tls-key")
    token = load_or_create_token(token_file, allow_readable_token)
    advertise = {"name": advertise_name, "host": host, "port": port} if advertise_name else None
    app = create_app(token, max_upload_bytes=int(max_upload_mb * 2**20), sensor_name=sensor,
                     sysfs_root=sysfs_root, estimate_watts=estimate_watts_per_core, bin_dir=bin_dir,
                     energy_protocol=energy_protocol, advertise=advertise, sensor_options=sensor_options,
                     max_queued_bytes=int(max_queued_mb * 2**20),
                     job_memory_bytes=int(job_memory_mb * 2**20) if job_memory_mb else None,
                     job_setup_s=job_setup_s, body_idle_timeout_s=body_timeout_s)
    if tls_cert is not None:
        print(f"edgeprune-agent: serving HTTPS; certificate fingerprint {cert_fingerprint(tls_cert)} "
              "(pin it on the host with: edgeprune device add ... --tls-fingerprint)", file=sys.stderr)
    elif host not in LOOPBACK_HOSTS:
        print(f"edgeprune-agent: warning: listening on {host} over plain HTTP: the bearer token and models "
              "cross the network in clear text; use --tls-cert/--tls-key on a shared network", file=sys.stderr)
    uvicorn.run(app, host=host, port=port, log_level="info", ssl_certfile=tls_cert, ssl_keyfile=tls_key,
                timeout_keep_alive=5, timeout_graceful_shutdown=10)


def _add_device_options(parser: argparse.ArgumentParser, energy: bool = True) -> None:
    """--sysfs-root/--bin-dir (fake or mounted trees) and, for measuring commands, sensor + energy protocol."""
    parser.add_argument("--sysfs-root", default="/", help="root of /sys and /proc to read (a fake or mounted tree)")
    parser.add_argument("--bin-dir", default=None, help="directory holding vcgencmd/tegrastats (default: PATH)")
    if not energy:
        return
    parser.add_argument("--sensor", choices=SENSOR_CHOICES, default="auto")
    parser.add_argument("--estimate-watts-per-core", type=float, default=10.0)
    parser.add_argument("--energy-windows", type=int, default=3, help="load windows per measurement (median)")
    parser.add_argument("--energy-window-s", type=float, default=0.5,
                        help="minimum load window; at least 10x the sensor's refresh is used")
    parser.add_argument("--idle-s", type=float, default=None, help="idle window before/after (default: window)")
    parser.add_argument("--sensor-refresh-s", type=float, default=None,
                        help="override the refresh period assumed for ina3221/rpi_pmic/battery/tegrastats")
    parser.add_argument("--ina219-shunt-ohms", type=float, default=0.1)
    parser.add_argument("--ina219-address", type=lambda v: int(v, 0), default=0x40)


def _protocol(args: argparse.Namespace) -> EnergyProtocol:
    """Energy protocol from the command line."""
    return EnergyProtocol(windows=args.energy_windows, min_window_s=args.energy_window_s, idle_s=args.idle_s)


def _sensor_options(args: argparse.Namespace) -> dict:
    """Per-sensor options from the command line."""
    options: dict = {"ina219": {"shunt_ohms": args.ina219_shunt_ohms, "address": args.ina219_address}}
    if args.sensor_refresh_s is not None:
        for name in ("ina3221", "rpi_pmic", "battery"):
            options[name] = {"refresh_s": args.sensor_refresh_s}
        options["tegrastats"] = {"interval_ms": max(1, int(args.sensor_refresh_s * 1000))}
    return options


def _build_parser() -> argparse.ArgumentParser:
    """Argument parser for all subcommands."""
    parser = argparse.ArgumentParser(prog="edgeprune-agent", description="edgeprune device agent")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    p_serve = sub.add_parser("serve", help="serve the measurement API")
    p_serve.add_argument("--host", default="127.0.0.1")
    p_serve.add_argument("--port", type=int, default=8765)
    p_serve.add_argument("--token-file", help="bearer token file; created (0600) if the path does not exist")
    p_serve.add_argument("--max-upload-mb", type=float, default=64.0)
    p_serve.add_argument("--max-queued-mb", type=float, default=256.0,
                         help="models waiting in the queue may hold at most this much (then 503 + Retry-After)")
    p_serve.add_argument("--job-memory-mb", type=float, default=None,
                         help="address-space limit of each measurement process (default: none)")
    p_serve.add_argument("--job-setup-s", type=float, default=SETUP_S,
                         help="per-job allowance for loading the model; deadline = this + 2 x max_duration_s "
                              "+ energy windows")
    p_serve.add_argument("--body-timeout-s", type=float, default=BODY_IDLE_TIMEOUT_S,
                         help="answer 408 when an upload sends nothing for this long")
    p_serve.add_argument("--tls-cert", help="PEM certificate: serve HTTPS (needed on any shared network)")
    p_serve.add_argument("--tls-key", help="PEM private key of --tls-cert")
    p_serve.add_argument("--allow-readable-token-file", action="store_true",
                         help="accept a token file other users can read (refused by default)")
    p_serve.add_argument("--advertise", nargs="?", const="", default=None, metavar="NAME",
                         help="announce with zeroconf as _edgeprune._tcp (NAME defaults to the hostname)")
    _add_device_options(p_serve)
    p_info = sub.add_parser("info", help="print this device's description as JSON")
    _add_device_options(p_info, energy=False)
    p_meas = sub.add_parser("measure", help="measure a model file locally and print the result JSON")
    p_meas.add_argument("model", type=Path)
    p_meas.add_argument("--runtime", default="onnxruntime")
    p_meas.add_argument("--threads", type=int, default=1)
    p_meas.add_argument("--warmup", type=int, default=10)
    p_meas.add_argument("--min-repeats", type=int, default=30)
    p_meas.add_argument("--min-duration-s", type=float, default=0.5)
    p_meas.add_argument("--max-duration-s", type=float, default=60.0)
    _add_device_options(p_meas)
    from .worker import add_arguments as add_worker_arguments

    p_work = sub.add_parser("worker", help="pull jobs of this device's hardware class from a farm broker "
                                           "(needs the [farm] extra)")
    add_worker_arguments(p_work)
    _add_device_options(p_work)
    return parser


def _measure(args: argparse.Namespace) -> dict:
    """Run the `measure` subcommand."""
    from .measure import measure_model
    from .sensors import open_sensor

    sensor = open_sensor(args.sensor, args.sysfs_root, watts_per_busy_core=args.estimate_watts_per_core,
                         bin_dir=args.bin_dir, options=_sensor_options(args))
    try:
        return measure_model(args.model.read_bytes(), runtime=args.runtime, threads=args.threads,
                             warmup=args.warmup, min_repeats=args.min_repeats,
                             min_duration_s=args.min_duration_s, max_duration_s=args.max_duration_s,
                             sensor=sensor, sysfs_root=args.sysfs_root, bin_dir=args.bin_dir,
                             energy_protocol=_protocol(args))
    finally:
        if sensor is not None:
            sensor.close()


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point of the `edgeprune-agent` console script."""
    from .errors import AgentError

    args = _build_parser().parse_args(argv)
    try:
        if args.command == "serve":
            name = args.advertise or socket.gethostname() if args.advertise is not None else None
            serve(args.host, args.port, args.token_file, args.max_upload_mb, args.sensor,
                  args.sysfs_root, args.estimate_watts_per_core, args.bin_dir, _protocol(args), name,
                  _sensor_options(args), args.tls_cert, args.tls_key, args.allow_readable_token_file,
                  args.max_queued_mb, args.job_memory_mb, args.job_setup_s, args.body_timeout_s)
        elif args.command == "info":
            from .fingerprint import device_info
            print(json.dumps(device_info(args.sysfs_root, args.bin_dir), indent=2))
        elif args.command == "worker":
            from .worker import run_worker
            run_worker(args, _protocol(args), _sensor_options(args))
        else:
            print(json.dumps(_measure(args), indent=2))
    except (CliError, AgentError, ValueError, OSError) as exc:
        print(f"edgeprune-agent: error: {exc}", file=sys.stderr)
        return 2
    return 0
