"""``edgeprune compress`` and ``edgeprune demo``."""
from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from edgeprune.cli.common import JsonOpt, ModelOpt
from edgeprune.cli.output import Output, RichProgress
from edgeprune.compress import ADMM_SHARE, METHODS, CompressConfig, compress
from edgeprune.prune.halp import HalpSettings
from edgeprune.prune.importance import CRITERIA
from edgeprune.prune.closed_loop import LoopSettings
from edgeprune.prune.ecc import EccSettings
from edgeprune.prune.joint.settings import JointSettings
from edgeprune.prune.schedule import SCHEDULES


def compress_command(model: str = ModelOpt,
                     weights: Path = typer.Option(None, "--weights", help="Dense checkpoint to start from."),
                     data: str = typer.Option("digits", "--data", help="digits, npz:PATH, cifar10:DIR or "
                                              "module:function."),
                     device: str = typer.Option("local", "--device", "-d"),
                     metric: str = typer.Option("latency", "--metric", help="energy or latency."),
                     budget: str = typer.Option("0.5", "--budget", help="4.2mJ, 3ms, or a fraction of dense."),
                     method: str = typer.Option("ecc", "--method", help="|".join(METHODS)),
                     epochs: int = typer.Option(3, "--epochs", help="Fine-tuning epochs after pruning."),
                     out: Path = typer.Option(Path("compressed"), "--out", help="Output directory."),
                     round_to: int = typer.Option(None, "--round-to", help="Keep widths on multiples of this."),
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
                     halp_steps: int = typer.Option(HalpSettings.steps, "--halp-steps", min=1,
                                                    help="halp: knapsack pruning steps, short-tuned in between."),
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
                     min_keep: float = typer.Option(EccSettings.min_keep, "--min-keep",
                                                    help="ecc, halp and netadapt: keep at least this share of every "
                                                    "channel group."),
                     sparse_epochs: int = typer.Option(JointSettings.sparse_epochs, "--sparse-epochs",
                                                       help="joint: epochs of polarization sparse training."),
                     polar_lambda: float = typer.Option(JointSettings.lam, "--polar-lambda",
                                                        help="joint: weight λ of the polarization regularizer."),
                     polar_t: float = typer.Option(JointSettings.t, "--polar-t", help="joint: t in "
                                                   "t·|γ| − |γ − mean γ|."),
                     polar_a: float = typer.Option(JointSettings.a, "--polar-a", help="joint: clamp γ to [0, a]."),
                     bin_width: float = typer.Option(JointSettings.bin_width, "--bin-width",
                                                     help="joint: γ histogram bin width for the thresholds."),
                     max_blocks: int = typer.Option(None, "--max-blocks", help="joint: remove at most N residual "
                                                    "blocks (0: channels only; default: as many as pay off)."),
                     gamma_histograms: Path = typer.Option(None, "--gamma-histograms",
                                                           help="joint: draw the γ histograms into this PNG."),
                     cost_model: str = typer.Option("device", "--cost-model", help="device (this architecture's "
                                                    "fitted model) or platform (the device's platform model)."),
                     as_json: bool = JsonOpt):
    """Prune a model to a measured-model energy or latency budget, fine-tune, export ONNX and measure it."""
    o = Output(as_json)
    cfg = CompressConfig(model=model, weights=str(weights) if weights else None, data=data, device=device,
                         metric=metric, budget=budget, method=method, epochs=epochs, out=str(out),
                         round_to=round_to, distill=distill, data_limit=data_limit, criterion=criterion,
                         lr=lr, batch_size=batch_size, weight_decay=weight_decay, warmup_epochs=warmup_epochs,
                         admm_epochs=admm_epochs, halp=HalpSettings(steps=halp_steps, min_keep=min_keep),
                         schedule=schedule, schedule_steps=schedule_steps,
                         closed_loop=LoopSettings(rounds=correction_rounds), ecc=EccSettings(min_keep=min_keep),
                         netadapt_min_keep=min_keep,
                         joint=JointSettings(lam=polar_lambda, t=polar_t, a=polar_a, sparse_epochs=sparse_epochs,
                                             bin_width=bin_width, max_blocks=max_blocks,
                                             histogram_png=str(gamma_histograms) if gamma_histograms else None),
                         cost_model=cost_model)
    summary = compress(cfg, say=o.log, reporter=RichProgress(o.console))
    o.emit(summary)
    print_summary(o, summary)


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
                f"{r['measured']:.4g} {u} ({r['measured_over_budget']:.3f} × budget) — {s['cost_source']}")
    verdict = "within" if s["within_budget_measured"] else "[red]OVER[/]"
    o.print(f"measured cost is {verdict} the budget; prediction error {s['prediction_error']:+.1%}; ONNX parity "
            f"max |diff| {s['parity']['max_abs_diff']:.1e}, top-1 agreement {s['parity']['top1_agreement']:.0%}")
    if "blocks_removed" in s:
        split = s["saving_split"]["predicted"]
        o.print(f"joint: removed {len(s['blocks_removed'])} block(s) {s['blocks_removed']} and "
                f"{s['channels_removed']} channel(s); predicted saving {split['depth_share']:.0%} from depth, "
                f"{split['width_share']:.0%} from width")
    o.print(f"saved {s['artifacts']['model_dir']} (channels.json + weights.pt) and {s['artifacts']['onnx']}")
    for w in s["warnings"]:
        o.warn(w)


def demo_command(out: Path = typer.Option(Path("edgeprune-demo"), "--out"), epochs: int = typer.Option(4),
                 as_json: bool = JsonOpt):
    """The main job: train the demo CNN on digits, calibrate this CPU, fit, compress to 50 % energy, measure."""
    from edgeprune.data import load_data
    from edgeprune.models import build_model
    from edgeprune.train import train_from_scratch

    o = Output(as_json)
    o.log("training the demo CNN on scikit-learn's digits (10 epochs)")
    data = load_data("digits")
    net, _ = build_model("demo_cnn")
    bar = RichProgress(o.console)
    train_from_scratch(net, data, 10, reporter=bar)
    out.mkdir(parents=True, exist_ok=True)
    import torch

    torch.save(net.state_dict(), out / "dense.pt")
    cfg = CompressConfig(model="demo_cnn", weights=str(out / "dense.pt"), data="digits", metric="energy",
                         budget="0.5", method="ecc", epochs=epochs, out=str(out / "compressed"), points=24,
                         network_variants=30)
    summary = compress(cfg, say=o.log, reporter=bar)
    o.emit(summary)
    print_summary(o, summary)
