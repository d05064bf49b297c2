"""The compression pipeline: cost model → prune to budget → remove channels → fine-tune → export → measure."""
from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable


from edgeprune.costmodel.dataset import METRIC_UNITS, Selection
from edgeprune.costmodel.fit import fit_from_table
from edgeprune.costmodel.store import default_model_path, find_file, find_model_file
from edgeprune.costmodel.macs import network_macs
from edgeprune.costmodel.model import CostModel
from edgeprune.data import load_data
from edgeprune.export.onnx_parity import export_onnx
from edgeprune.formats import to_onnx_bytes
from edgeprune.models.layer_space import architecture_hash, build_layer_space
from edgeprune.measure.calibrate import calibrate
from edgeprune.measure.registry import open_device
from edgeprune.measure.settings import MeasureSettings
from edgeprune.measurement import Measurement
from edgeprune.models import build_model
from edgeprune.outcomes import accuracy_warnings, budget_warnings
from edgeprune.progress import SILENT, Progress, point_reporter
from edgeprune.paths import default_table
from edgeprune.phase_time import estimate_phases, say_estimates, timed
from edgeprune.prune.artifact import save_compressed
from edgeprune.prune.budget import InfeasibleBudget, check_budget, parse_budget, resolve_budget
from edgeprune.prune.closed_loop import LoopSettings, correct_to_budget
from edgeprune.prune.ecc import EccSettings, prune_ecc, select_ecc
from edgeprune.prune.global_magnitude import prune_global
from edgeprune.prune.halp import HalpSettings, prune_halp
from edgeprune.prune.importance import CRITERIA, DEFAULT_BATCHES
from edgeprune.structure.blocks import apply_pruning, block_layers
from edgeprune.prune.joint.method import describe, floor_layers, joint_summary, prune_joint, replan
from edgeprune.prune.joint.settings import JointSettings
from edgeprune.prune.netadapt import NetAdaptIncomplete, netadapt_search
from edgeprune.structure.physical import min_widths
from edgeprune.prune.schedule import check_schedule, prune_on_schedule
from edgeprune.prune.uniform import prune_uniform
from edgeprune.selection_store import config_digest, load_selection, save_selection
from edgeprune.tables.store import LatencyTable
from edgeprune.train import evaluate, fine_tune, recalibrate_bn

METHODS = ("ecc", "halp", "netadapt", "uniform", "global", "joint")
ADMM_SHARE = 0.2  # default ADMM budget: this share of the fine-tuning epochs (so ADMM stays a minor phase)
Say = Callable[[str], None]


@dataclass
class CompressConfig:
    """Everything `edgeprune compress` takes."""

    model: str = "demo_cnn"
    weights: str | None = None
    data: str = "digits"
    device: str = "local"
    metric: str = "latency"
    budget: str = "0.5"
    method: str = "ecc"
    epochs: int = 3
    out: str = "compressed"
    round_to: int | None = None
    distill: bool | None = None  # None: distil from the dense model whenever dense weights were given
    runtime: str = "onnxruntime"
    threads: int = 1
    points: int = 32  # calibration points per signature when no cost model exists yet
    network_variants: int = 40
    lr: float = 0.01
    batch_size: int = 128
    weight_decay: float = 5e-4
    warmup_epochs: float | None = None  # None: a tenth of the epochs, at most one
    data_limit: int | None = None
    admm_epochs: float | None = None  # ecc's ADMM / halp's between-step training budget; None: ADMM_SHARE × epochs
    ecc: EccSettings = field(default_factory=EccSettings)
    halp: HalpSettings = field(default_factory=HalpSettings)
    joint: JointSettings = field(default_factory=JointSettings)
    netadapt_tune_steps: int = 50
    netadapt_step: float = 0.05
    netadapt_min_keep: float = 0.2  # as ecc's min_keep: no group below this share of its dense width
    criterion: str | None = None  # channel ranking (CRITERIA); None: l1, or ECC's ADMM norms for one-shot ecc
    criterion_batches: int = DEFAULT_BATCHES  # training batches the data-driven criteria (taylor, apoz) look at
    schedule: str = "oneshot"  # SCHEDULES: reach the method's widths at once, or over schedule_steps prune-tune steps
    schedule_steps: int = 3
    closed_loop: LoopSettings = field(default_factory=LoopSettings)  # measure, rescale the budget, re-select
    cost_model: str = "device"  # "platform": price widths with the device's platform model (fit --platform)


def ensure_cost_model(cfg: CompressConfig, device, net, space, say: Say, reporter: Progress = SILENT):
    """Load the device's fitted cost model for this architecture, calibrating and fitting first if missing."""
    if cfg.cost_model == "platform":
        from edgeprune.costmodel.platform_layers import platform_cost_model_for
        from edgeprune.costmodel.platform_persist import default_platform_path

        wanted = default_platform_path(cfg.device, cfg.runtime, cfg.threads, cfg.metric)
        path = find_file(wanted.name) or wanted
        model, meta = platform_cost_model_for(path, device.info()["fingerprint_id"], cfg.model, space, cfg.runtime)
        say(f"cost model: platform model {path} (fitted {meta['fitted_at']}); the closed loop still measures")
        return model, meta, str(path)
    key = (cfg.device, cfg.model, cfg.runtime, cfg.threads, cfg.metric, space.input_shape)
    path = find_model_file(*key) or default_model_path(*key)
    arch = architecture_hash(space)
    fingerprint = device.info()["fingerprint_id"]
    if Path(path).is_file():
        meta = CostModel.load(path)[1]
        if meta["device"]["fingerprint_id"] == fingerprint and meta["model"]["architecture_hash"] == arch:
            model, meta = CostModel.load(path, architecture_hash=arch, fingerprint_id=fingerprint)
            say(f"cost model: {path} (fitted {meta['fitted_at']})")
            return model, meta, str(path)
        say(f"{path} was fitted for another device or architecture: refitting for this one")
        path = default_model_path(*key)
    say(f"no cost model for {cfg.model} on {cfg.device}: calibrating ({cfg.points} points per layer signature, "
        f"{cfg.network_variants} network variants), then fitting")
    settings = MeasureSettings(threads=cfg.threads)
    with LatencyTable(default_table(cfg.device)) as table:
        cal = calibrate(device, cfg.model, net, space, table, cfg.runtime, settings, cfg.points,
                        cfg.network_variants, progress=point_reporter(reporter))
        reporter.finish()
        fit = fit_from_table(table, cfg.device, cfg.model, space, Selection(cal.fingerprint_id, cfg.runtime,
                                                                          cfg.threads), cfg.metric, "auto")
    fit.model.save(path, fit.provenance)
    return fit.model, fit.provenance, str(path)


def _measure(device, onnx: bytes, cfg: CompressConfig) -> Measurement:
    measured = device.measure(onnx, cfg.runtime, MeasureSettings(threads=cfg.threads))
    if cfg.metric == "energy" and measured.energy is None:
        raise ValueError(f"device {cfg.device!r} returned no energy; use --metric latency")
    return measured


def _view(m: Measurement, cfg: CompressConfig, reference_ms: float | None) -> dict:
    """A measurement as the summary reports it; drift-corrected at the cost model's typical machine speed."""
    return {"value": m.value(cfg.metric), "source": m.source(cfg.metric, cfg.device),
            "drift_corrected": m.drift_corrected(cfg.metric, reference_ms), "latency_ms": m.latency.median,
            "energy_mj": m.energy.per_inference if m.energy else None,
            "energy_source": m.energy.label if m.energy else None}


def _summary(model, space, widths, acc, removed=()) -> dict:
    return {"accuracy": acc, "params": int(sum(p.numel() for p in model.parameters())),
            "macs": int(network_macs(space, widths, removed))}


def _criterion(cfg: CompressConfig) -> str:
    """The channel criterion of this run; one-shot ecc keeps its own choice ("admm-norm": ADMM group norms)."""
    if cfg.criterion is not None and cfg.criterion not in CRITERIA:
        raise ValueError(f"criterion must be one of {CRITERIA}, got {cfg.criterion!r}")
    check_schedule(cfg.schedule, cfg.schedule_steps)
    if cfg.method == "joint":
        if cfg.criterion is not None or cfg.schedule != "oneshot":
            raise ValueError("joint ranks channels and blocks by BN scaling factors after sparse training; it "
                             "takes no criterion and only schedule oneshot")
        return "bn-gamma"
    if cfg.method == "ecc" and cfg.schedule == "oneshot":
        if cfg.criterion is not None:
            raise ValueError("ecc ranks channels by its ADMM group norms; a criterion applies to ecc only with "
                             "schedule iterative or agp")
        return "admm-norm"
    return cfg.criterion or "l1"


def _tune_settings(cfg: CompressConfig) -> dict:
    """fine_tune's keyword arguments for this run (besides the teacher): lr, weight decay and warm-up."""
    warmup = cfg.warmup_epochs if cfg.warmup_epochs is not None else min(1.0, 0.1 * cfg.epochs)
    return {"lr": cfg.lr, "weight_decay": cfg.weight_decay, "warmup_epochs": warmup}


def _remove_and_tune(cfg: CompressConfig, work, pruned, space, result, data, teacher, criterion: str,
                     say: Say, reporter: Progress) -> tuple:
    """(pruned fine-tuned model, dense kept indices, per-step records): ``pruned`` (the selection with channels
    removed and BN re-estimated) fine-tuned (oneshot), or ``work`` pruned to the method's widths over the
    schedule's steps."""
    out = Path(cfg.out)
    tune = {**_tune_settings(cfg), "teacher": teacher, "reporter": reporter}
    if cfg.schedule == "oneshot":
        step = {"step": 1, "widths": dict(result.widths), "epochs": cfg.epochs,
                "accuracy_before_fine_tune": evaluate(pruned, data.val)["accuracy"], "accuracy": None}
        say(f"after channel removal and BatchNorm re-estimation: accuracy {step['accuracy_before_fine_tune']:.2%} "
            "(before fine-tuning)")
        if cfg.epochs > 0:
            step["accuracy"] = fine_tune(pruned, data, cfg.epochs, checkpoint_dir=out / "checkpoints",
                                         **tune).final["accuracy"]
        return pruned, result.kept, [step]
    sched = prune_on_schedule(work, space, result.widths, data, cfg.schedule, cfg.schedule_steps, cfg.epochs,
                              criterion=criterion, batches=cfg.criterion_batches, checkpoint_dir=out / "checkpoints",
                              progress=lambda r: say(f"{cfg.schedule} step {r['step']}: widths {r['widths']}, "
                                                     f"{r['epochs']} epoch(s)"), **tune)
    return sched.model, sched.kept, sched.history


def _select(cfg: CompressConfig, work, space, cost_model, budget, data, criterion: str, say: Say,
            reporter: Progress):
    """(the method's selection at the budget, its pruned model if the method made one, how it re-selects at another
    predicted target for the closed loop; netadapt only shrinks further)."""
    cost_fn = lambda w: float(cost_model.predict([w])[0])  # noqa: E731
    ranking = {"criterion": criterion, "criterion_batches": cfg.criterion_batches}
    halp = dataclasses.replace(cfg.halp, round_to=cfg.round_to, lr=cfg.lr)

    def netadapt_to(target: float, start=None):
        # NetAdapt short-tunes between steps: keep those weights rather than re-pruning the dense model.
        return netadapt_search(work, space, cost_fn, target, data, round_to=cfg.round_to,
                               short_tune_steps=cfg.netadapt_tune_steps, step_fraction=cfg.netadapt_step,
                               start=start, min_keep=cfg.netadapt_min_keep, **ranking,
                               progress=lambda r: say(f"netadapt step {r['iter']}: {r['group']} → {r['width']}, "
                                                      f"predicted {r['cost']:.4g} {budget.unit} (target "
                                                      f"{r['target']:.4g}), held-out accuracy {r['accuracy']:.2%}"))

    def halp_to(target: float, settings: HalpSettings = halp, start=None):
        return prune_halp(work, space, lambda ws: cost_model.predict(list(ws)), target, data, settings,
                          progress=lambda r: say(f"halp step {r['step']}: predicted {r['predicted_cost']:.4g} "
                                                 f"{budget.unit} (cost model, target {r['target']:.4g})"),
                          start=start, reporter=reporter)

    def baseline_to(target: float):
        prune = prune_uniform if cfg.method == "uniform" else prune_global
        return prune(work, space, cost_fn, target, round_to=cfg.round_to, data=data, **ranking)

    tuned = None
    if cfg.method == "ecc":
        result = prune_ecc(work, space, cost_model, budget.value, data, cfg.ecc,
                           progress=lambda r: say(f"ecc round {r['iter']}: predicted {r['predicted_cost']:.4g} "
                                                  f"{budget.unit}, off-mask weight {r['pruned_weight_share']:.2%}"),
                           reporter=reporter)
    elif cfg.method == "halp":
        result, tuned = halp_to(budget.value)
    elif cfg.method == "netadapt":
        result, tuned = netadapt_to(budget.value)
    elif cfg.method == "joint":
        result = prune_joint(work, space, cost_model, budget.value, data, cfg.joint, round_to=cfg.round_to,
                             checkpoint_dir=Path(cfg.out) / "sparse-checkpoints",
                             progress=lambda r: say(describe(r)), reporter=reporter)
    else:
        result = baseline_to(budget.value)

    def reselect(target: float, current, state):
        if cfg.method == "netadapt" and target >= current.predicted_cost:
            return None
        try:
            if cfg.method == "ecc":
                return select_ecc(work, space, cost_model, current.widths, target, data, cfg.ecc,
                                  current.history), None
            if cfg.method == "netadapt":
                return netadapt_to(target, start=(current, state))
            if cfg.method == "halp":  # shrink: one more step on the pruned model; widen: again from dense
                if target < current.predicted_cost:
                    return halp_to(target, dataclasses.replace(halp, steps=1), start=(current, state))
                return halp_to(target)
            if cfg.method == "joint":
                return replan(current, space, target), None
            return baseline_to(target), None
        except NetAdaptIncomplete as stopped:
            return stopped.result, stopped.model
        except InfeasibleBudget:
            return None

    return result, tuned, reselect


def _select_and_correct(cfg: CompressConfig, device, meta, work, space, cost_model, budget, data, criterion,
                        shape, say: Say, reporter: Progress, timings: dict):
    """The method's selection, corrected on the device by the closed loop; returns (the selected model with channels
    removed and BatchNorm re-estimated, the loop's outcome)."""
    with timed(timings, "selection"):
        result, tuned, reselect = _select(cfg, work, space, cost_model, budget, data, criterion, say, reporter)
    source, removed = {}, {}

    def measure_selection(selected, state) -> float:
        reporter.advance()
        candidate = state if state is not None else apply_pruning(work, space, selected.kept, selected.blocks_removed)
        recalibrate_bn(candidate, data.train)
        removed[id(selected)] = candidate
        measured = _measure(device, to_onnx_bytes(candidate, shape), cfg)
        source["label"] = measured.source(cfg.metric, cfg.device)
        return measured.value(cfg.metric)

    with timed(timings, "closed_loop"):
        reporter.start("closed-loop rounds (measured)", cfg.closed_loop.rounds + 1)
        loop = correct_to_budget(result, tuned, budget.value, measure_selection, reselect, cfg.closed_loop,
                                 say=lambda line: say(f"{line}, {source['label']}"), unit=budget.unit)
        reporter.finish()
    return removed[id(loop.result)], loop


def compress(cfg: CompressConfig, say: Say = lambda _: None, reporter: Progress = SILENT) -> dict:
    """Run the whole pipeline; returns the summary that `compress --json` prints."""
    if cfg.method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {cfg.method!r}")
    if cfg.cost_model not in ("device", "platform"):
        raise ValueError(f"--cost-model must be device or platform, got {cfg.cost_model!r}")
    if cfg.admm_epochs is not None and not cfg.admm_epochs > 0:
        raise ValueError(f"--admm-epochs must be > 0, got {cfg.admm_epochs}")
    check_budget(cfg.budget, cfg.metric)  # before minutes of calibration, not after
    criterion = _criterion(cfg)
    timings: dict = {}
    prune_epochs = cfg.admm_epochs if cfg.admm_epochs is not None else max(ADMM_SHARE * cfg.epochs, 1e-3)
    cfg = dataclasses.replace(cfg, ecc=dataclasses.replace(cfg.ecc, epochs=prune_epochs,
                                                           round_to=cfg.ecc.round_to or cfg.round_to),
                              halp=dataclasses.replace(cfg.halp, epochs=prune_epochs))
    data = load_data(cfg.data, batch_size=cfg.batch_size, limit=cfg.data_limit)
    net, shape = build_model(cfg.model, cfg.weights, input_shape=data.input_shape)
    space = build_layer_space(net, shape)
    device = open_device(cfg.device)
    with timed(timings, "cost_model"):
        cost_model, meta, cm_path = ensure_cost_model(cfg, device, net, space, say, reporter)
    dense_cost = float(cost_model.predict([{}])[0])
    removable = floor_layers(net, space, cfg.joint) if cfg.method == "joint" else []
    budget = resolve_budget(parse_budget(cfg.budget), cfg.metric, dense_cost,
                            float(cost_model.predict([min_widths(space, cfg.round_to)], removable)[0]))
    with timed(timings, "dense_evaluation"):
        dense_acc = evaluate(net, data.val)["accuracy"]
    say(f"dense: accuracy {dense_acc:.2%}, predicted {dense_cost:.4g} {budget.unit}; budget {cfg.budget} → "
        f"{budget.value:.4g} {budget.unit}")
    distill = cfg.distill if cfg.distill is not None else cfg.weights is not None
    teacher = copy.deepcopy(net).eval() if distill else None
    estimates = estimate_phases(cfg, net, data, teacher, budget.value / dense_cost)
    say_estimates(say, estimates)
    work = copy.deepcopy(net)
    out = Path(cfg.out)
    digest = config_digest(cfg)
    resumed = load_selection(out, digest)
    if resumed is not None:
        selected, loop, saved = resumed
        timings.update({k: v for k, v in saved.items() if k in ("selection", "closed_loop")})
        say(f"resuming: the selection saved in {out / 'selection'} by an earlier run with the same settings")
    else:
        selected, loop = _select_and_correct(cfg, device, meta, work, space, cost_model, budget, data, criterion,
                                             shape, say, reporter, timings)
        save_selection(out, selected, cfg.model, shape, loop, digest, timings)
    result = loop.result
    say(f"{cfg.method}: widths {result.widths}, predicted {result.predicted_cost:.4g} {budget.unit}; "
        f"{cfg.schedule} pruning ({criterion} channels), fine-tuning {cfg.epochs} epoch(s)"
        f"{' distilled from the dense model' if teacher is not None else ''}")
    with timed(timings, "fine_tuning"):
        pruned, kept, steps = _remove_and_tune(cfg, work, selected, space, result, data, teacher, criterion,
                                               say, reporter)
    comp_acc = evaluate(pruned, data.val)["accuracy"]
    with timed(timings, "export"):
        reporter.start("export (compressed + dense ONNX)", 2)
        onnx_path = out / "model.onnx"
        parity = export_onnx(pruned, shape, onnx_path, data.val)
        reporter.advance()
        dense_onnx = out / "dense.onnx"
        export_onnx(net, shape, dense_onnx)
        reporter.finish()
    ref_ms = meta.get("reference_ms")
    with timed(timings, "final_measurement"):
        reporter.start("final measurement (compressed + dense)", 2)
        final = _measure(device, onnx_path.read_bytes(), cfg)
        reporter.advance()
        measured, dense_measured = _view(final, cfg, ref_ms), _view(_measure(device, dense_onnx.read_bytes(), cfg),
                                                                    cfg, ref_ms)
        reporter.finish()
    over = measured["value"] / budget.value
    warnings = accuracy_warnings(dense_acc, comp_acc, data.num_classes) + budget_warnings(over, loop.stopped,
                                                                                          cfg.metric)
    if over > 1:
        why = (f"the same structure measured {loop.measured / budget.value:.2f} × budget before fine-tuning, so "
               "the difference is this device's measurement noise" if loop.within_budget
               else f"the closed loop could not bring it under: {loop.stopped}")
        warnings.append(f"measured {cfg.metric} is {over:.2f} × budget: OVER budget ({why})")
    summary = {
        "model": cfg.model, "method": cfg.method, "metric": cfg.metric, "unit": METRIC_UNITS[cfg.metric],
        "criterion": criterion, "schedule": {"name": cfg.schedule, "steps": len(steps), "history": steps},
        "budget": cfg.budget, "budget_abs": budget.value, "device": cfg.device,
        "dense": {**_summary(net, space, {}, dense_acc), "predicted_cost": dense_cost,
                  "measured_cost": dense_measured["value"]},
        "compressed": {**_summary(pruned, space, result.widths, comp_acc, block_layers(space, result.blocks_removed)),
                       "widths": result.widths},
        "accuracy_change": comp_acc - dense_acc, "accuracy_split": f"validation split of {data.name}",
        "num_classes": data.num_classes, "warnings": warnings,
        "predicted_cost": result.predicted_cost, "measured_cost": measured["value"],
        "measured_over_budget": over, "within_budget_measured": measured["value"] <= budget.value,
        "cost_source": measured["source"], "predicted_by": cm_path,
        "measured_cost_drift_corrected": measured["drift_corrected"],
        "closed_loop": {"rounds": loop.rounds, "within_budget": loop.within_budget,
                        "measured_before_fine_tune": loop.measured, "stopped": loop.stopped},
        "prediction_error": final.prediction_error(result.predicted_cost, cfg.metric, ref_ms),
        "measurements": {"compressed": measured, "dense": dense_measured},
        "training": {"epochs": cfg.epochs, "distilled": teacher is not None, **_tune_settings(cfg),
                     "batch_size": cfg.batch_size,
                     "pruning_epochs": prune_epochs if cfg.method in ("ecc", "halp") else None},
        "estimates_s": estimates, "timings_s": timings, "resumed_selection": resumed is not None,
        "parity": parity.to_dict(), "data": data.name,
        "artifacts": {"model_dir": str(out), "onnx": str(onnx_path)},
    }
    if cfg.method == "joint":
        summary.update(joint_summary(result, space))
    save_compressed(out, pruned, cfg.model, shape, kept,
                    {k: summary[k] for k in ("method", "criterion", "schedule", "metric", "budget", "budget_abs",
                                             "predicted_cost", "measured_cost", "cost_source", "warnings")}
                    | {"accuracy": comp_acc, "dense_accuracy": dense_acc, "data": cfg.data},
                    blocks_removed=result.blocks_removed)
    return summary
