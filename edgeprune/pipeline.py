"""The compression pipeline: cost model → prune to budget → remove channels → fine-tune → export → measure."""
from __future__ import annotations

import copy
import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable


from edgeprune.compress_config import ADMM_SHARE, CompressConfig, check_config, tune_settings
from edgeprune.costmodel.dataset import METRIC_UNITS, Selection
from edgeprune.costmodel.fit import fit_from_table
from edgeprune.costmodel.store import default_model_path, find_file, find_model_file
from edgeprune.costmodel.macs import network_macs
from edgeprune.costmodel.model import CostModel
from edgeprune.data import load_data
from edgeprune.files import atomic_write
from edgeprune.export.onnx_parity import export_onnx
from edgeprune.formats import to_onnx_bytes
from edgeprune.models.layer_space import architecture_hash, build_layer_space
from edgeprune.measure.calibrate import calibrate
from edgeprune.measure.registry import open_device
from edgeprune.measure.settings import MeasureSettings
from edgeprune.measure.steady import measure_beside_dense
from edgeprune.measurement import Measurement
from edgeprune.models import build_model
from edgeprune.outcomes import accuracy_warnings, budget_warnings
from edgeprune.progress import SILENT, Progress, point_reporter
from edgeprune.paths import default_table
from edgeprune.phase_time import estimate_phases, say_estimates, timed
from edgeprune.prune.artifact import save_compressed
from edgeprune.prune.budget import parse_budget, resolve_budget
from edgeprune.prune.closed_loop import correct_to_budget
from edgeprune.prune.floor import joint_hint, reselect_above_floor
from edgeprune.prune.methods import Context
from edgeprune.structure.blocks import apply_pruning, block_layers
from edgeprune.structure.physical import min_widths
from edgeprune.prune.schedule import prune_on_schedule
from edgeprune.selection_store import config_digest, load_selection, save_selection
from edgeprune.tables.store import LatencyTable
from edgeprune.train import fine_tune, recalibrate_bn
from edgeprune.train.distributed import pick_device
from edgeprune.train.objective import score

# A first compress calibrates on the spot: 0.15 s per point (not calibrate's 0.3 s) halves that wait (ResNet-20 here:
# 116 -> 65 s) at a noise CV of ~1.5 % on dense repeats; the closed loop measures the selection anyway.
ON_DEMAND_MIN_DURATION_S = 0.15
Say = Callable[[str], None]


def ensure_cost_model(cfg: CompressConfig, device, net, space, say: Say, given=None, reporter: Progress = SILENT):
    """Load the device's fitted cost model for this architecture, calibrating and fitting first if missing;
    ``given`` ((CostModel, provenance)) is used instead once it is checked to be this architecture's and device's."""
    if given is not None:
        model, meta = given
        fitted_for = (meta["model"]["architecture_hash"], meta["device"]["fingerprint_id"])
        if fitted_for != (architecture_hash(space), device.info()["fingerprint_id"]):
            raise ValueError(f"the cost model was fitted for another architecture or device than {cfg.model} on "
                             f"{cfg.device}; fit one for this model on this device")
        say(f"cost model: given (fitted {meta['fitted_at']} on {meta['device']['name']})")
        return model, meta, meta.get("path", "given cost model")
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
    settings = MeasureSettings(threads=cfg.threads, min_duration_s=ON_DEMAND_MIN_DURATION_S)
    say(f"no cost model for {cfg.model} on {cfg.device}: calibrating ({cfg.points} points per layer signature, "
        f"{cfg.network_variants} network variants, {settings.min_duration_s:g} s each), then fitting")
    with LatencyTable(default_table(cfg.device)) as table:
        cal = calibrate(device, cfg.model, net, space, table, cfg.runtime, settings, cfg.points,
                        cfg.network_variants, progress=point_reporter(reporter))
        reporter.finish()
        fit = fit_from_table(table, cfg.device, cfg.model, space, Selection(cal.fingerprint_id, cfg.runtime,
                                                                          cfg.threads), cfg.metric, "auto")
    fit.model.save(path, fit.provenance)
    return fit.model, fit.provenance, str(path)


def _measure(device, onnx: bytes, cfg: CompressConfig, min_duration_s: float | None = None) -> Measurement:
    settings = MeasureSettings(threads=cfg.threads)
    if min_duration_s is not None and cfg.metric == "latency":
        settings = dataclasses.replace(settings, min_duration_s=min_duration_s)
    measured = device.measure(onnx, cfg.runtime, settings)
    if cfg.metric == "energy" and measured.energy is None:
        raise ValueError(f"device {cfg.device!r} returned no energy; use --metric latency")
    return measured


def _against_budget(device, onnx: bytes, dense_onnx: bytes, cfg: CompressConfig, budget, ref_ms) -> tuple:
    """(the cost to compare with the budget, the model's measurement, the dense one measured beside it or None, how
    it was measured): for a budget relative to dense, the ratio to dense measured alongside × the dense cost it was
    priced at (load slows both alike); else the drift-corrected measurement."""
    if budget.relative:
        def once(model: bytes):  # shorter runs: the median over pairs steadies the figure more than their length
            return lambda: _measure(device, model, cfg, ON_DEMAND_MIN_DURATION_S)

        p = measure_beside_dense(once(onnx), once(dense_onnx),
                                 cfg.metric, ref_ms, budget.dense_cost, pairs=cfg.closed_loop.pairs)
        how = (f"{p.ratio:.3f} × dense measured alongside, median of {p.pairs} pair(s)"
               + (" (dense measured >15 % off its calibrated cost: the device is loaded differently)"
                  if p.busy else ""))
        return p.ratio * budget.dense_cost, p.model, p.dense, how
    m = _measure(device, onnx, cfg)
    corrected = m.drift_corrected(cfg.metric, ref_ms)
    return m.comparable(cfg.metric, ref_ms), m, None, ("" if corrected is None
                                                       else f"drift-corrected, raw {m.value(cfg.metric):.4g}")


def _view(m: Measurement, cfg: CompressConfig, reference_ms: float | None) -> dict:
    """A measurement as the summary reports it; drift-corrected at the cost model's typical machine speed."""
    return {"value": m.value(cfg.metric), "source": m.source(cfg.metric, cfg.device),
            "drift_corrected": m.drift_corrected(cfg.metric, reference_ms), "latency_ms": m.latency.median,
            "energy_mj": m.energy.per_inference if m.energy else None,
            "energy_source": m.energy.label if m.energy else None}


def _summary(model, space, widths, acc, removed=()) -> dict:
    return {"accuracy": acc, "params": int(sum(p.numel() for p in model.parameters())),
            "macs": int(network_macs(space, widths, removed))}


def _remove_and_tune(cfg: CompressConfig, work, pruned, space, result, data, teacher, criterion: str,
                     say: Say, reporter: Progress) -> tuple:
    """(pruned fine-tuned model, dense kept indices, per-step records): ``pruned`` (the selection with channels
    removed and BN re-estimated) fine-tuned (oneshot), or ``work`` pruned to the method's widths over the
    schedule's steps."""
    out = Path(cfg.out)
    tune = {**tune_settings(cfg), "teacher": teacher, "reporter": reporter}
    if cfg.schedule == "oneshot":
        step = {"step": 1, "widths": dict(result.widths), "epochs": cfg.epochs,
                "accuracy_before_fine_tune": score(pruned, data.val, data.eval_fn)["accuracy"], "accuracy": None}
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


def _select_and_correct(cfg: CompressConfig, method, ctx: Context, device, meta, budget, shape, dense_onnx: bytes,
                        timings: dict):
    """The method's selection, corrected on the device by the closed loop; returns (the selected model with channels
    removed and BatchNorm re-estimated, the loop's outcome)."""
    work, space, data, reporter = ctx.model, ctx.space, ctx.data, ctx.reporter
    with timed(timings, "selection"):
        result, tuned = method.select(ctx, cfg.settings, budget.value)
    source, removed = {}, {}

    ref_ms, raw = meta.get("reference_ms"), []
    phase, total = "closed-loop rounds (measured)", cfg.closed_loop.rounds + 1
    reselect = reselect_above_floor(method, ctx, cfg.settings)

    def reselect_and_resume(target: float, current, state):
        chosen = reselect(target, current, state)
        reporter.start(phase, total)  # a method that trains to re-select (halp) showed its own bar meanwhile
        reporter.advance(len(raw))
        return chosen

    def measure_selection(selected, state) -> float:
        reporter.advance()
        candidate = state if state is not None else apply_pruning(work, space, selected.kept, selected.blocks_removed)
        recalibrate_bn(candidate, data.train)
        removed[id(selected)] = candidate
        # Decide in the frame the budget and the predictions are in: beside dense for a relative budget, else at
        # the calibration's machine speed; a busy moment then neither widens nor shrinks the model.
        value, measured, _, how = _against_budget(device, to_onnx_bytes(candidate, shape), dense_onnx, cfg, budget,
                                                  ref_ms)
        source["label"] = measured.source(cfg.metric, cfg.device) + (f"; {how}" if how else "")
        raw.append((measured.value(cfg.metric), how))
        return value

    with timed(timings, "closed_loop"):
        reporter.start(phase, total)
        loop = correct_to_budget(result, tuned, budget.value, measure_selection, reselect_and_resume,
                                 cfg.closed_loop, say=lambda line: ctx.say(f"{line}, {source['label']}"),
                                 unit=budget.unit)
        reporter.finish()
    for record, (value, how) in zip(loop.rounds, raw):
        record["measured_raw"], record["measured_how"] = value, how
    return removed[id(loop.result)], loop


def _over_budget_reason(over_corrected: float | None, loop, budget: float) -> str:
    """Why a final measurement came out over budget: the device's speed, noise, or a loop that could not fit it."""
    if over_corrected is not None and over_corrected <= 1:
        return (f"drift-corrected to the calibration's machine speed it is {over_corrected:.2f} × budget: the device "
                "is slower now than when it was calibrated (load, heat)")
    if loop.within_budget:
        return (f"the same structure measured {loop.measured / budget:.2f} × budget before fine-tuning, so the "
                "difference is this device's measurement noise")
    return f"the closed loop could not bring it under: {loop.stopped}"


@dataclass
class Outcome:
    """What a compress run produced: the summary `compress --json` prints, and the pruned, fine-tuned model with
    the dense channels each group kept and the blocks removed."""

    summary: dict
    model: Any
    kept: dict[str, list[int]]
    blocks_removed: list[str]
    input_shape: tuple[int, ...]


def compress(cfg: CompressConfig, say: Say = lambda _: None, reporter: Progress = SILENT) -> dict:
    """Run the whole pipeline on the config's model and data specs; returns the summary."""
    return run(cfg, say, reporter).summary


def run(cfg: CompressConfig, say: Say = lambda _: None, reporter: Progress = SILENT, *, net=None, data=None,
        cost_model=None, identity: str = "") -> Outcome:
    """Run the whole pipeline. ``net`` (an nn.Module named ``cfg.model``), ``data`` (a DataBundle) and
    ``cost_model`` ((CostModel, provenance)) replace building them from the config's specs; ``identity`` (a digest
    of the given model's weights and data) keeps a resumed selection to the same inputs."""
    method, criterion = check_config(cfg)  # before minutes of calibration, not after
    timings: dict = {}
    prune_epochs = cfg.admm_epochs if cfg.admm_epochs is not None else max(ADMM_SHARE * cfg.epochs, 1e-3)
    if data is None:
        data = load_data(cfg.data, batch_size=cfg.batch_size, limit=cfg.data_limit)
    if net is None:
        net, shape = build_model(cfg.model, cfg.weights, input_shape=data.input_shape)
    else:
        shape = (1, *data.input_shape[1:])
    space = build_layer_space(net, shape)
    device = open_device(cfg.device)
    with timed(timings, "cost_model"):
        cost_model, meta, cm_path = ensure_cost_model(cfg, device, net, space, say, cost_model, reporter)
    trains_on = pick_device()  # selection trains (ADMM, short tunes) where fine-tuning will: a GPU if there is one
    work = copy.deepcopy(net).to(trains_on)
    ctx = Context(work, space, cost_model, data, METRIC_UNITS[cfg.metric], cfg.round_to, criterion,
                  cfg.criterion_batches, cfg.lr, prune_epochs, Path(cfg.out), say, reporter)
    cfg = dataclasses.replace(cfg, settings=method.prepare(cfg.settings or method.settings(), ctx))
    dense_cost = float(cost_model.predict([{}])[0])
    removable = method.floor_layers(ctx, cfg.settings)
    with joint_hint(method.name, net):
        budget = resolve_budget(parse_budget(cfg.budget), cfg.metric, dense_cost,
                                float(cost_model.predict([min_widths(space, cfg.round_to)], removable)[0]))
    with timed(timings, "dense_evaluation"):
        dense_acc = score(net, data.val, data.eval_fn)["accuracy"]
    say(f"dense: accuracy {dense_acc:.2%}, predicted {dense_cost:.4g} {budget.unit}; budget {cfg.budget} → "
        f"{budget.value:.4g} {budget.unit}")
    distill = cfg.distill if cfg.distill is not None else cfg.weights is not None and data.loss_fn is None
    if distill and data.loss_fn is not None:
        raise ValueError("distillation matches class logits and cannot be combined with a loss_fn; use distill=False")
    teacher = copy.deepcopy(net).eval() if distill else None
    pruning = (method.phase, method.pruning_steps(cfg.settings, len(data.train))) if method.phase else None
    estimates = estimate_phases(cfg.epochs, pruning, net, data, teacher, budget.value / dense_cost)
    say_estimates(say, estimates)
    out = Path(cfg.out)
    digest = config_digest(cfg, identity)
    resumed = load_selection(out, digest, base=net if identity else None)
    if resumed is not None:
        selected, loop, saved = resumed
        timings.update({k: v for k, v in saved.items() if k in ("selection", "closed_loop")})
        say(f"resuming: the selection saved in {out / 'selection'} by an earlier run with the same settings")
    else:
        with joint_hint(method.name, net):
            selected, loop = _select_and_correct(cfg, method, ctx, device, meta, budget, shape,
                                                 to_onnx_bytes(net, shape), timings)
        save_selection(out, selected, cfg.model, shape, loop, digest, timings)
    result = loop.result
    say(f"{cfg.method}: widths {result.widths}, predicted {result.predicted_cost:.4g} {budget.unit}; "
        f"{cfg.schedule} pruning ({criterion} channels), fine-tuning {cfg.epochs} epoch(s) on {trains_on}"
        f"{' distilled from the dense model' if teacher is not None else ''}")
    with timed(timings, "fine_tuning"):
        pruned, kept, steps = _remove_and_tune(cfg, work, selected, space, result, data, teacher, criterion,
                                               say, reporter)
    comp_acc = score(pruned, data.val, data.eval_fn)["accuracy"]
    with timed(timings, "export"):
        reporter.start("export (compressed + dense ONNX)", 2)
        onnx_path = out / "model.onnx"
        parity = export_onnx(pruned, shape, onnx_path, data.val)
        reporter.advance()
        dense_onnx = out / "dense.onnx"
        export_onnx(net, shape, dense_onnx)
        reporter.advance()
        reporter.finish()
    ref_ms = meta.get("reference_ms")
    with timed(timings, "final_measurement"):
        reporter.start("final measurement (compressed + dense)", 1)
        decided, final, dense_m, how = _against_budget(device, onnx_path.read_bytes(), dense_onnx.read_bytes(), cfg,
                                                       budget, ref_ms)
        dense_m = dense_m or _measure(device, dense_onnx.read_bytes(), cfg)
        reporter.advance()
        reporter.finish()
    measured, dense_measured = _view(final, cfg, ref_ms), _view(dense_m, cfg, ref_ms)
    over = (decided if budget.relative else measured["value"]) / budget.value
    corrected = measured["drift_corrected"]
    over_corrected = corrected / budget.value if corrected is not None else None
    judged = over if budget.relative or over_corrected is None else over_corrected
    warnings = accuracy_warnings(dense_acc, comp_acc, data.num_classes) + budget_warnings(judged, loop.stopped,
                                                                                           cfg.metric)
    if over > 1:
        warnings.append(f"measured {cfg.metric} is {over:.2f} × budget: OVER budget "
                        f"({_over_budget_reason(None if budget.relative else over_corrected, loop, budget.value)})")
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
        "measured_over_budget": over, "within_budget_measured": over <= 1, "measured_how": how,
        "cost_source": measured["source"], "predicted_by": cm_path,
        "measured_cost_drift_corrected": corrected, "measured_over_budget_drift_corrected": over_corrected,
        "closed_loop": {"rounds": loop.rounds, "within_budget": loop.within_budget,
                        "measured_before_fine_tune": loop.measured, "stopped": loop.stopped},
        "prediction_error": final.prediction_error(result.predicted_cost, cfg.metric, ref_ms),
        "measurements": {"compressed": measured, "dense": dense_measured},
        "training": {"epochs": cfg.epochs, "distilled": teacher is not None, **tune_settings(cfg),
                     "batch_size": cfg.batch_size,
                     "pruning_epochs": prune_epochs if method.phase else None, "device": str(trains_on)},
        "settings": dataclasses.asdict(cfg.settings),
        "estimates_s": estimates, "timings_s": timings, "resumed_selection": resumed is not None,
        "parity": parity.to_dict(), "data": data.name,
        "artifacts": {"model_dir": str(out), "onnx": str(onnx_path)},
    }
    summary.update(method.summary(result, space))
    save_compressed(out, pruned, cfg.model, shape, kept,
                    {k: summary[k] for k in ("method", "criterion", "schedule", "metric", "budget", "budget_abs",
                                             "predicted_cost", "measured_cost", "cost_source", "warnings")}
                    | {"accuracy": comp_acc, "dense_accuracy": dense_acc, "data": cfg.data},
                    blocks_removed=result.blocks_removed)
    atomic_write(out / "summary.json", json.dumps(summary, indent=1, default=str) + "\n")  # `edgeprune report` reads it
    return Outcome(summary, pruned, kept, list(result.blocks_removed), tuple(shape))
