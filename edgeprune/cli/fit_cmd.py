"""``edgeprune fit`` and ``edgeprune predict``: the device's cost model for a model."""
from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from edgeprune.cli.common import (JsonOpt, ModelOpt, ShapeOpt, check_choice, check_metric, check_runtime,
                                  parse_shape, shape_option)
from edgeprune.cli.output import Output
from edgeprune.cli.platform_cmd import fit_platform, platform_predict
from edgeprune.costmodel.model import CostModel
from edgeprune.costmodel.persist import CostModelError
from edgeprune.costmodel.platform_persist import default_platform_path
from edgeprune.costmodel.store import find_file, find_model_file
from edgeprune.models.layer_space import architecture_hash
from edgeprune.models import build_model
from edgeprune.models.layer_space import build_layer_space
from edgeprune.models.widths import parse_widths, widths_from_checkpoint

DeviceOpt = typer.Option("local", "--device", "-d", help="Device name the table was calibrated on.")
MetricOpt = typer.Option("latency", "--metric", help="latency (ms) or energy (mJ).")
RuntimeOpt = typer.Option("onnxruntime", "--runtime")
SOURCES = ("auto", "layers", "network", "both")
ThreadsOpt = typer.Option(1, "--threads")


def fit_command(device: str = DeviceOpt, model: str = ModelOpt, input_shape: str = ShapeOpt,
                metric: str = MetricOpt,
                source: str = typer.Option("auto", "--from", help="layers, network, both, or auto (the one with the best "
                                                            "held-out accuracy)."),
                runtime: str = RuntimeOpt, threads: int = ThreadsOpt,
                table: Path = typer.Option(None, help="Latency table (default: <data folder>/latency_tables/"
                                                      "<device>.sqlite)."),
                out: Path = typer.Option(None, help="Output JSON (default: <data folder>/cost_models/...)."),
                platform: bool = typer.Option(False, "--platform", help="Fit the device's platform model from "
                                              "every network in the table (measured or imported), not one model."),
                residual: str = typer.Option("auto", "--residual", help="--platform: boosted residual auto "
                                             "(by cross-validation), none or hgb."),
                as_json: bool = JsonOpt):
    """Fit the bilinear cost model from a calibrated table and report its held-out accuracy."""
    o = Output(as_json)
    check_metric(metric)
    check_runtime(runtime)
    check_choice("--from", source, SOURCES)
    check_choice("--residual", residual, ("auto", "none", "hgb"))
    if platform:
        return fit_platform(o, device, metric, runtime, threads, table, out, residual)
    import edgeprune

    fitted = edgeprune.fit(model, parse_shape(input_shape), device, metric=metric, source=source,
                           runtime=runtime, threads=threads, table=table, out=out)
    o.emit({"cost_model": str(fitted.path), "device": device,
            "fingerprint_id": fitted.provenance["device"]["fingerprint_id"], **fitted.report})
    _print_fit(o, fitted.report, fitted.path, device, runtime, threads)


def _print_fit(o: Output, r: dict, path: Path, device: str, runtime: str, threads: int) -> None:
    layers = Table("signature", "n", "R²", "mean |err|", title=f"per-layer fits ({r['unit']}, {device}, "
                   f"{runtime}, {threads} thread(s))")
    for key, v in r["layer_fit"].items():
        layers.add_row(key, str(v["n"]), "-" if v["r2"] is None else f"{v['r2']:.3f}", f"{v['mean_ape']:.1%}")
    o.print(layers)
    held = Table("predictor", "n", "±5 %", "±10 %", "Spearman", "median |err|",
                 title="held-out whole-network accuracy")
    for name, v in r["heldout"].items():
        if "error" in v:
            held.add_row(name, "-", "-", "-", "-", v["error"])
        else:
            held.add_row(name, str(v["n"]), f"{v['within_5']:.0%}", f"{v['within_10']:.0%}",
                         f"{v['spearman']:.3f}", f"{v['median_ape']:.1%}")
    o.print(held)
    if not r["heldout"]:
        o.warn(r["heldout_note"])
    noise = "unknown (fewer than 2 dense repeats)" if r["noise_cv"] is None else f"{r['noise_cv']:.1%}"
    o.print(f"measurement run-to-run CV (dense repeats): {noise}; feature spec {r['feature_spec']}")
    o.print(f"saved {path}")


def predict_command(device: str = DeviceOpt, model: str = ModelOpt, input_shape: str = ShapeOpt,
                    weights: Path = typer.Option(None, "--weights", help="(Pruned) checkpoint: widths read "
                                                 "from its tensor shapes."),
                    widths: str = typer.Option(None, "--widths", help="group=width,... or JSON."),
                    metric: str = MetricOpt, runtime: str = RuntimeOpt, threads: int = ThreadsOpt,
                    cost_model: Path = typer.Option(None, "--cost-model", help="Fitted model JSON."),
                    as_json: bool = JsonOpt):
    """Predict a model's cost on a device from its fitted cost model."""
    o = Output(as_json)
    if weights is not None and widths is not None:
        raise ValueError("give --weights or --widths, not both")
    check_metric(metric)
    check_runtime(runtime)
    net, shape = build_model(model, input_shape=parse_shape(input_shape))
    path = cost_model or find_model_file(device, model, runtime, threads, metric, shape)
    fallback = None if path else find_file(default_platform_path(device, runtime, threads, metric).name)
    if path is None and fallback is None:
        raise CostModelError(
            f"no cost model for {model} at input {'×'.join(map(str, shape))} on device {device} ({runtime}, "
            f"{threads} thread(s), {metric})",
            hint=f"run `edgeprune calibrate --device {device} --model {model}{shape_option(input_shape)}` then "
                 f"`edgeprune fit --device {device} --model {model}{shape_option(input_shape)}`; "
                 "`edgeprune models` lists the cost models there are")
    if fallback is not None and weights is None and widths is None:  # the dense model: no layer space needed
        return platform_predict(o, fallback, device, model, shape, {}, runtime, threads)
    space = build_layer_space(net, shape)
    w = widths_from_checkpoint(space, weights) if weights else parse_widths(widths) if widths else {}
    from edgeprune.measure.variants import check_widths

    check_widths(space, w)
    if fallback is not None:
        return platform_predict(o, fallback, device, model, shape, w, runtime, threads)
    cm, meta = CostModel.load(path, architecture_hash=architecture_hash(space))
    if meta["device"]["name"] != device:
        raise CostModelError(f"{path} belongs to device {meta['device']['name']!r}, not {device!r}")
    value = float(cm.predict([w])[0])
    dense = float(cm.predict([{}])[0])
    energy = meta["device"].get("energy_source")
    result = {"predicted": value, "dense_predicted": dense, "ratio_to_dense": value / dense,
              "metric": meta["metric"], "unit": meta["unit"], "widths": {**space.dense_widths(), **w},
              "provenance": {"cost_model": str(path), "device": meta["device"], "runtime": meta["runtime"],
                             "source": meta["source"], "fitted_at": meta["fitted_at"],
                             "energy_source": energy}}
    o.emit(result)
    label = f" — energy source: {energy}" if energy else ""
    o.print(f"predicted {meta['metric']}: [bold]{value:.4g} {meta['unit']}[/] ({value / dense:.0%} of dense "
            f"{dense:.4g} {meta['unit']}) on {device} ({meta['device']['cpu_model']}), {meta['runtime']['name']} "
            f"{'/'.join(meta['runtime']['versions'])}, {meta['runtime']['threads']} thread(s); cost model "
            f"{path} fitted {meta['fitted_at']} from {meta['source']}{label}")
