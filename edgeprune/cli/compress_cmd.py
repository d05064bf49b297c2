"""``edgeprune compress`` and ``edgeprune demo``: options built from the pruning-method registry, run by the API."""
from __future__ import annotations

import inspect
import typing
from pathlib import Path

import typer
from rich.table import Table

from edgeprune.cli.common import JsonOpt, ModelOpt
from edgeprune.cli.output import Output, RichProgress
from edgeprune.files import atomic_open
from edgeprune.compress_config import ADMM_SHARE, CompressConfig
from edgeprune.prune.closed_loop import LoopSettings
from edgeprune.prune.importance import CRITERIA
from edgeprune.prune.methods import methods, options, settings_from_options
from edgeprune.prune.schedule import SCHEDULES

DEMO_WIDTHS = (64, 128, 256)  # the demo CNN `edgeprune demo` trains and compresses


def _with_method_options(command):
    """Add every registered method's settings options (``prune.methods.options``) to ``command``'s signature,
    before ``--json``; their values arrive in ``**method_options``."""
    hints = typing.get_type_hints(command)
    params = [p.replace(annotation=hints[p.name]) for p in inspect.signature(command).parameters.values()
              if p.kind is not inspect.Parameter.VAR_KEYWORD]
    extra = []
    for opt in options():
        users = ", ".join(m for m, _ in opt.fields)
        default = "" if opt.default is None else f" (default: {opt.default})"
        extra.append(inspect.Parameter(opt.param, inspect.Parameter.KEYWORD_ONLY, annotation=opt.type,
                                       default=typer.Option(None, opt.flag, help=f"{users}: {opt.help}{default}")))
    params = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in params]
    command.__signature__ = inspect.Signature(params[:-1] + extra + params[-1:])
    command.__annotations__ = {**{p.name: p.annotation for p in params + extra}}
    return command


@_with_method_options
def compress_command(model: str = ModelOpt,
                     weights: Path = typer.Option(None, "--weights", help="Dense checkpoint to start from."),
                     data: str = typer.Option("digits", "--data", help="digits, npz:PATH, cifar10:DIR or "
                                              "module:function."),
                     device: str = typer.Option("local", "--device", "-d"),
                     metric: str = typer.Option("latency", "--metric", help="energy or latency."),
                     budget: str = typer.Option("0.5", "--budget", help="4.2mJ, 3ms, or a fraction of dense."),
                     method: str = typer.Option("ecc", "--method", help="; ".join(
                         f"{name}: {m.help}" for name, m in methods().items())),
                     epochs: int = typer.Option(3, "--epochs", help="Fine-tuning epochs after pruning."),
                     out: Path = typer.Option(Path("compressed"), "--out", help="Output directory."),
                     round_to: int = typer.Option(None, "--round-to", help="Keep widths on multiples of this "
                                                  "(every method)."),
                     distill: bool = typer.Option(None, "--distill/--no-distill", help="Fine-tune with the dense "
                                                  "model as teacher (default: on when --weights is given)."),
                     lr: float = typer.Option(CompressConfig.lr, "--lr", help="Fine-tuning learning rate (SGD, "
                                              "warm-up then cosine decay)."),
                     batch_size: int = typer.Option(CompressConfig.batch_size, "--batch-size", min=1),
                     weight_decay: float = typer.Option(CompressConfig.weight_decay, "--weight-decay", min=0.0),
                     warmup_epochs: float = typer.Option(None, "--warmup-epochs", help="Linear warm-up (default: "
                                                         "a tenth of --epochs, at most 1)."),
                     admm_epochs: float = typer.Option(None, "--admm-epochs", help="Training budget of the pruning "
                                                       "phase in epochs: ecc's ADMM (at least 60 steps), halp's "
                                                       f"short-tunes between steps (default: {ADMM_SHARE:g} × "
                                                       "--epochs)."),
                     data_limit: int = typer.Option(None, "--data-limit", help="Use at most N samples per split."),
                     criterion: str = typer.Option(None, "--criterion", help="Channel ranking: " + "|".join(CRITERIA)
                                                   + " (default l1; ecc one-shot uses its ADMM norms)."),
                     schedule: str = typer.Option("oneshot", "--schedule", help="|".join(SCHEDULES)
                                                  + ": prune at once, or step by step with fine-tuning between."),
                     schedule_steps: int = typer.Option(3, "--schedule-steps", help="Prune–fine-tune steps of "
                                                        "iterative/agp (the epochs are split across them)."),
                     correction_rounds: int = typer.Option(LoopSettings.rounds, "--correction-rounds",
                                                           help="Measure the pruned structure on the device before "
                                                           "fine-tuning; while over budget (or under 0.97×), rescale "
                                                           "the budget by measured ÷ predicted and re-select, at most "
                                                           "N times (0: measure only)."),
                     measure_pairs: int = typer.Option(LoopSettings.pairs, "--measure-pairs", min=1,
                                                       help="A budget relative to dense is judged on the median of "
                                                       "N (model, dense) measurements taken alternately (5 when "
                                                       "the device is busier than at calibration)."),
                     cost_model: str = typer.Option("device", "--cost-model", help="device (this architecture's "
                                                    "fitted model) or platform (the device's platform model)."),
                     as_json: bool = JsonOpt, **method_options):
    """Prune a model to a measured-model energy or latency budget, fine-tune, export ONNX and measure it."""
    import edgeprune

    o = Output(as_json)
    result = edgeprune.compress(
        model, data=data, weights=str(weights) if weights else None, device=device, metric=metric,
        budget=budget, method=method, epochs=epochs, out=str(out), round_to=round_to, distill=distill,
        data_limit=data_limit, criterion=criterion, lr=lr, batch_size=batch_size, weight_decay=weight_decay,
        warmup_epochs=warmup_epochs, admm_epochs=admm_epochs, schedule=schedule, schedule_steps=schedule_steps,
        closed_loop=LoopSettings(rounds=correction_rounds, pairs=measure_pairs), cost_model=cost_model,
        settings=settings_from_options(method, method_options), say=o.log, progress=RichProgress(o.console))
    o.emit(result.summary)
    print_summary(o, result.summary)


def print_summary(o: Output, s: dict) -> None:
    """Dense vs compressed, with where every number came from."""
    u = s["unit"]
    t = Table("", "dense", "compressed", "source", title=f"{s['model']} — {s['method']} at budget {s['budget']} "
              f"({s['budget_abs']:.4g} {u} {s['metric']}) on {s['device']}")
    t.add_row("accuracy", f"{s['dense']['accuracy']:.2%}", f"{s['compressed']['accuracy']:.2%} "
              f"({100 * s['accuracy_change']:+.1f} pt)", s["accuracy_split"])
    t.add_row("params", f"{s['dense']['params']:,}", f"{s['compressed']['params']:,}", "counted")
    t.add_row("MACs", f"{s['dense']['macs']:,}", f"{s['compressed']['macs']:,}", "counted")
    t.add_row(f"predicted {s['metric']}", f"{s['dense']['predicted_cost']:.4g} {u}",
              f"{s['predicted_cost']:.4g} {u}", f"cost model {s['predicted_by']}")
    t.add_row(f"measured {s['metric']}", f"{s['dense']['measured_cost']:.4g} {u}", f"{s['measured_cost']:.4g} {u}",
              s["cost_source"])
    o.print(t)
    if s.get("measured_cost_drift_corrected"):
        o.print(f"drift-corrected measurement (reference workload, table's typical speed): "
                f"{s['measured_cost_drift_corrected']:.4g} {u} — compare this one with the prediction")
    for r in s["closed_loop"]["rounds"]:
        o.print(f"closed loop, before fine-tuning, round {r['round']}: predicted {r['predicted']:.4g} {u}, measured "
                f"{r['measured']:.4g} {u} ({r['measured_over_budget']:.3f} × budget) — {s['cost_source']}"
                + (f"; {r['measured_how']}" if r.get("measured_how") else ""))
    verdict = "within" if s["within_budget_measured"] else "[red]OVER[/]"
    how = f": {s['measured_how']}" if s.get("measured_how") else ""
    o.print(f"measured cost is {verdict} the budget ({s['measured_over_budget']:.3f} × budget{how}); prediction error {s['prediction_error']:+.1%}; ONNX parity "
            f"max |diff| {s['parity']['max_abs_diff']:.1e}, top-1 agreement {s['parity']['top1_agreement']:.0%}")
    if "blocks_removed" in s:
        split = s["saving_split"]["predicted"]
        o.print(f"joint: removed {len(s['blocks_removed'])} block(s) {s['blocks_removed']} and "
                f"{s['channels_removed']} channel(s); predicted saving {split['depth_share']:.0%} from depth, "
                f"{split['width_share']:.0%} from width")
    o.print(f"saved {s['artifacts']['model_dir']} (channels.json + weights.pt) and {s['artifacts']['onnx']}")
    for w in s["warnings"]:
        o.warn(w)


def demo_command(out: Path = typer.Option(Path("edgeprune-demo"), "--out"), epochs: int = typer.Option(4, min=0),
                 as_json: bool = JsonOpt):
    """The main job: train the demo CNN on digits, calibrate this CPU, fit, compress to 50 % energy, measure."""
    import edgeprune
    from edgeprune.data import load_data
    from edgeprune.models import demo_cnn
    from edgeprune.train import train_from_scratch

    o = Output(as_json)
    o.log("training the demo CNN on scikit-learn's digits (10 epochs)")
    data = load_data("digits")
    # wide enough that compute, not per-op overhead, sets its cost: a narrow one can hardly be made cheaper
    net = demo_cnn(widths=DEMO_WIDTHS)
    bar = RichProgress(o.console)
    train_from_scratch(net, data, 10, reporter=bar)
    out.mkdir(parents=True, exist_ok=True)
    import torch

    with atomic_open(out / "dense.pt") as f:
        torch.save(net.state_dict(), f)
    result = edgeprune.compress(net, train=data.train, val=data.val, name="demo_cnn", metric="energy",
                                budget="0.5", method="ecc", epochs=epochs, out=str(out / "compressed"),
                                points=24, network_variants=30, say=o.log, progress=bar)
    o.emit(result.summary)
    print_summary(o, result.summary)
