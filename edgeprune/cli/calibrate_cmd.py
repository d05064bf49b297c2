"""``edgeprune calibrate``: fill a latency table for a model on a device."""
from __future__ import annotations

from pathlib import Path

import typer
from edgeprune_agent.sensors import CHOICES as SENSOR_CHOICES

from edgeprune.cli.common import (JsonOpt, ModelOpt, ShapeOpt, WeightsOpt, check_choice, check_runs, check_runtime,
                                  parse_shape)
from edgeprune.cli.output import Output, RichProgress
from edgeprune.measure.platform_calibrate import calibrate_platform
from edgeprune.models import build_model
from edgeprune.measure.devices import DeviceUnavailable
from edgeprune.measure.registry import expand_devices, open_device
from edgeprune.measure.settings import MeasureSettings
from edgeprune.paths import default_table
from edgeprune.progress import point_reporter
from edgeprune.tables.store import LatencyTable


def calibrate_command(
    device: list[str] = typer.Option(["local"], "--device", "-d",
                                     help="'local', a registered device, or a group; repeat for a fleet of one "
                                          "hardware class (jobs are spread over the devices concurrently)."),
    model: str = ModelOpt,
    weights: Path = WeightsOpt,
    input_shape: str = ShapeOpt,
    runtime: str = typer.Option("onnxruntime", help="onnxruntime or litert."),
    points: int = typer.Option(50, help="Single-layer points to measure per distinct layer signature."),
    network_variants: int = typer.Option(10, help="Whole-network variants (dense + random widths)."),
    network_passes: int = typer.Option(1, help="Sweeps over the network variants (the fit takes each variant's "
                                                "median; 3 shrugs off a disturbed measurement)."),
    threads: int = typer.Option(1, help="Runtime threads."),
    warmup: int = typer.Option(10, help="Warm-up runs before timing."),
    min_repeats: int = typer.Option(30, help="Minimum timed runs per point."),
    min_duration: float = typer.Option(0.3, help="Minimum timed seconds per point."),
    sensor: str = typer.Option("auto", help="Energy source on the local device: auto, rapl, estimate, none."),
    table: Path = typer.Option(None, help="SQLite table (default: <data folder>/latency_tables/<device>.sqlite)."),
    seed: int = typer.Option(0, help="Seed for the sampled points and variants (same seed resumes)."),
    platform: bool = typer.Option(False, "--platform", help="Measure for the device's platform model instead of "
                                  "one model: single-op micro-benchmarks of every op kind and random networks of "
                                  "four families (--model is not used)."),
    op_points: int = typer.Option(8, help="--platform: micro-benchmarks per op kind."),
    platform_networks: int = typer.Option(100, help="--platform: random networks (cell space, ResNet-20/56 and "
                                          "MobileNetV2 widths, ShuffleNet-style), the families taking turns."),
    as_json: bool = JsonOpt,
):
    """Measure single layers at sampled channel widths and whole-network variants; resumable."""
    out = Output(as_json)
    check_runtime(runtime)
    check_choice("--sensor", sensor, SENSOR_CHOICES)
    settings = MeasureSettings(threads=threads, warmup=warmup, min_repeats=min_repeats,
                               min_duration_s=min_duration)
    if platform:
        return _calibrate_platform(out, device, sensor, table, runtime, settings, op_points, platform_networks,
                                   seed, network_passes)
    import edgeprune

    if points < 1 or network_variants < 0:
        raise ValueError("--points must be >= 1 and --network-variants >= 0")
    net, shape = build_model(model, input_shape=parse_shape(input_shape))
    if input_shape is not None:
        check_runs(net, shape, model)
    bar = RichProgress(out.console)
    try:
        result = edgeprune.calibrate(model, shape, device, weights=weights, runtime=runtime, points=points,
                                     network_variants=network_variants, network_passes=network_passes,
                                     seed=seed, table=table, measure=settings, sensor=sensor,
                                     on_point=point_reporter(bar))
    finally:
        bar.finish()
    summary = result.to_dict()
    out.emit(summary)
    _report(out, summary, shape)


def _report(out: Output, s: dict, shape) -> None:
    energy = f"{s['energy_source']} ({s['energy_kind']})" if s["energy_source"] else "none"
    out.print(f"[bold]calibrated[/] {s['device']} (fingerprint {s['fingerprint_id']}), "
              f"{s['runtime']} {s['runtime_version']}, {s['threads']} thread(s), input {tuple(shape)}")
    out.print(f"  layers:  {s['points_measured']} measured, {s['points_skipped']} already in table "
              f"({s['signatures']} signatures)")
    out.print(f"  network: {s['network_variants_measured']} measured, {s['network_variants_skipped']} "
              f"already in table")
    out.print(f"  energy:  {energy}")
    if len(s["devices"]) > 1:
        out.print(f"  fleet:   {s['measured_by']} rows per device; lost: {list(s['lost_devices']) or 'none'}, "
                  f"{s['requeued']} job(s) handed on")
    out.print(f"  table:   {s['table']}")


def _calibrate_platform(out: Output, device: list[str], sensor: str, table: Path | None, runtime: str,
                        settings: MeasureSettings, op_points: int, networks: int, seed: int, passes: int) -> None:
    if op_points < 0 or networks < 0 or passes < 1:
        raise ValueError("--op-points and --platform-networks must be >= 0 and --network-passes >= 1")
    devs = [open_device(name, sensor=sensor) for name in expand_devices(device)]
    path = table or default_table(device[0])
    bar = RichProgress(out.console)
    with LatencyTable(path) as tbl:
        try:
            result = calibrate_platform(devs if len(devs) > 1 else devs[0], tbl, runtime, settings, op_points,
                                        networks, seed, passes, point_reporter(bar))
        except DeviceUnavailable as exc:
            raise DeviceUnavailable(f"{exc}. Everything measured so far is in {path}; run the same command "
                                    "again to resume") from exc
        finally:
            bar.finish()
    s = result.to_dict()
    out.emit(s)
    out.print(f"[bold]platform calibration[/] {s['device']} (fingerprint {s['fingerprint_id']}), {runtime}, "
              f"{s['threads']} thread(s): {s['measured']} measured, {s['skipped']} already in table "
              f"{s['by_family']}; fit with `edgeprune fit --platform --device {device[0]}`")
