"""Benchmark: pruning methods and the Torch-Pruning baseline at equal budgets of dense *measured* latency.

Usage: python bench/compression_quality.py --medium [--models resnet20] [--budgets 0.5,0.3]
       [--methods dense-ft,ecc,halp,netadapt,uniform,global,tp,joint] [--epochs N] [--train-limit N] [--update]
Modes: --quick (10k images, 1 epoch), --medium (50k, 15 epochs, ResNet-20), --full (ResNet-56, 100 epochs, batch 512;
a GPU: bench/full_on_gpu.sh runs its cells side by side). EDGEPRUNE_BENCH_DATA names another data folder.
Every cell (model, budget, method) is saved as soon as it finishes; a re-run skips finished cells (``--update``
re-runs the named methods). Needs ../shared/data; skips cleanly without it.
Writes bench/results/compression_quality-MODE.json and .png. Several processes (one per core) may run at once: each
claims a cell with a lock and adds it to the file under a lock. ``--carry`` copies what unfinished cells need to
resume to bench/results/carry/MODE (commit it: the work folder is not kept across machines); a run restores it.
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import fcntl
import json
import os
import shutil
import sys
import time
from pathlib import Path

from edgeprune.pipeline import CompressConfig, compress
from edgeprune.prune.budget import InfeasibleBudget
from edgeprune.prune.methods import get as get_method
from edgeprune.costmodel.macs import network_macs
from edgeprune.data import load_data
from edgeprune.formats import on_cpu, to_onnx_bytes
from edgeprune.measure.registry import open_device
from edgeprune.models import build_model
from edgeprune.models.layer_space import build_layer_space
from edgeprune.train import evaluate, fine_tune, recalibrate_bn

from tp_baseline import measured_ms, prune_to_measured_budget, ratio_to_dense

SHARED = Path(os.environ.get("EDGEPRUNE_BENCH_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")
RESULTS = Path(__file__).parent / "results"
WEIGHTS = {"resnet20": "resnet20-12fca82f.th", "resnet56": "resnet56-4bfd9763.th"}
# The fine-tuning recipe is the same for every method of a mode; the GPU mode takes bigger batches (lr scaled alike).
MODES = {"quick": {"epochs": 1, "train_limit": 10000, "models": "resnet20", "batch_size": 128, "lr": 0.01},
         "medium": {"epochs": 15, "train_limit": None, "models": "resnet20", "batch_size": 128, "lr": 0.01},
         "full": {"epochs": 100, "train_limit": None, "models": "resnet56", "batch_size": 512, "lr": 0.04}}
METHODS = "dense-ft,ecc,halp,uniform,tp,global,netadapt,joint"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = ap.add_mutually_exclusive_group()
    for m in MODES:
        mode.add_argument(f"--{m}", dest="mode", action="store_const", const=m)
    ap.add_argument("--models", default=None)
    ap.add_argument("--budgets", default="0.5,0.3")
    ap.add_argument("--methods", default=METHODS)
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--train-limit", type=int, default=None)
    ap.add_argument("--min-keep", type=float, default=None,
                    help="ecc, halp, netadapt and global keep at least this share of every channel group (default: "
                    "theirs, 0.2; at 0.2 their floor on ResNet-20 is ~37 %% of dense, above a 0.3 budget)")
    ap.add_argument("--update", action="store_true", help="re-run the named methods' cells even if finished")
    ap.add_argument("--carry", action="store_true", help="copy unfinished cells' checkpoints and selections to "
                    "bench/results/carry/MODE (to commit: the work folder is not kept across machines), then exit")
    args = ap.parse_args()
    args.mode = args.mode or "quick"
    if not (SHARED / "cifar10-jpeg" / "train.npz").is_file():
        print(f"skipped: {SHARED}/cifar10-jpeg not found")
        return
    spec = MODES[args.mode]
    epochs = args.epochs if args.epochs is not None else spec["epochs"]
    limit = args.train_limit if args.train_limit is not None else spec["train_limit"]
    recipe = {"train_limit": limit, "epochs": epochs, "batch_size": spec["batch_size"], "lr": spec["lr"]}
    path = RESULTS / f"compression_quality-{args.mode}.json"
    work = RESULTS / "work" / args.mode
    carry = RESULTS / "carry" / args.mode
    if args.carry:
        carry_unfinished(path, work, carry)
        return
    data_src = f"npz:{SHARED / 'cifar10-jpeg'}"
    work.mkdir(parents=True, exist_ok=True)
    restore_carried(carry, work)
    # This machine's own calibration and cost model, apart from the shipped ones (another machine's).
    os.environ.setdefault("EDGEPRUNE_TABLES_DIR", str(work / "tables"))
    os.environ.setdefault("EDGEPRUNE_MODELS_DIR", str(work / "models"))
    methods = args.methods.split(",")
    for name in (args.models or spec["models"]).split(","):
        weights = SHARED / "pretrained" / "cifar-resnet" / WEIGHTS[name]

        def set_dense(state):
            state.update(mode=args.mode, epochs=epochs, train_limit=limit, lr=spec["lr"], batch_size=spec["batch_size"],
                         distill=True,
                         device="local CPU, onnxruntime, 1 thread (latency measured; energy not used)")
            state["dense"].setdefault(name, None)
        dense = update_state(path, set_dense)["dense"][name]
        if dense is None:  # measured once; the per-cell budgets are measured beside each cell
            dense = dense_reference(name, weights, data_src, limit)
            update_state(path, lambda state: state["dense"].update({name: dense}))
        print(f"{name}: dense accuracy {dense['accuracy']:.2%}, measured {dense['measured_ms']:.4f} ms (local CPU, "
              f"onnxruntime, 1 thread)", flush=True)
        cells = [(float(b), m) for b in args.budgets.split(",") for m in methods if m != "dense-ft"]
        if "dense-ft" in methods:  # the reference after the first two cells: ours are the most telling
            cells.insert(min(2, len(cells)), (None, "dense-ft"))
        for frac, method in cells:
            key = (name, frac, method)
            with claim(work / f"{cell_name(key)}.lock") as mine:
                if not mine:
                    print(f"  {method} @ {frac if frac else 'dense'}: another process is running it, skipped",
                          flush=True)
                    continue
                finished = any(cell_key(r) == key for r in read_state(path)["runs"])
                if finished and not args.update:
                    continue
                print(f"  {method} @ {frac if frac else 'dense'}: running", flush=True)
                run = run_cell(name, weights, data_src, recipe, frac, method, dense, work, args.min_keep)

                def add_run(state):
                    state["runs"] = [r for r in state["runs"] if cell_key(r) != key] + [run]
                    state["targets"] = check_targets(state["runs"])
                state = update_state(path, add_run)
                plot(state, path.with_suffix(".png"))
                print("  " + describe(run), flush=True)
    state = update_state(path, lambda state: state.update(targets=check_targets(state["runs"])))
    plot(state, path.with_suffix(".png"))
    print(json.dumps(state["targets"], indent=1))


def cell_key(run: dict) -> tuple:
    return run["model"], run["budget"], run["method"]


def cell_name(key: tuple) -> str:
    """A cell's folder (and lock) name in the work folder: model-budget-method."""
    return "-".join(map(str, key))


def read_state(path: Path) -> dict:
    """The results file as it is now (written atomically, so readable without the lock)."""
    return json.loads(path.read_text()) if path.is_file() else {"runs": [], "dense": {}}


@contextlib.contextmanager
def claim(lock: Path):
    """Yield True while this process holds ``lock`` (a cell being run), False when another process holds it."""
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True


def update_state(path: Path, change) -> dict:
    """Read the results file, apply ``change`` (in place), write it back atomically, under a lock: several
    benchmark processes (one per core) may add cells to the same file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        state = read_state(path)
        change(state)
        save(path, state)
    return state


CARRIED = ("checkpoints/last.pt", "selection/*", "tp_selection.pt")


def carry_unfinished(path: Path, work: Path, carry: Path) -> None:
    """Copy what unfinished cells need to resume (epoch checkpoint, saved selection, budget) from the work folder,
    which is not kept across machines, to ``carry`` (committed); drop the carried files of finished cells."""
    finished = {cell_name(cell_key(r)) for r in read_state(path)["runs"]}
    for cell in sorted(d for d in work.glob("*-*-*") if d.is_dir()):
        target = carry / cell.name
        if cell.name in finished:
            shutil.rmtree(target, ignore_errors=True)
            continue
        for pattern in CARRIED:
            for src in cell.glob(pattern):
                dst = target / src.relative_to(cell)
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dst)
                print(f"carried {dst}")
    for stale in (d for d in carry.glob("*") if d.name in finished):
        shutil.rmtree(stale)


def restore_carried(carry: Path, work: Path) -> None:
    """Copy the files an earlier session carried (``--carry``) into ``work`` where missing, so an unfinished cell
    resumes at its saved selection and last finished epoch."""
    for src in (f for f in carry.rglob("*") if f.is_file()):
        dst = work / src.relative_to(carry)
        if not dst.is_file():
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)
            print(f"restored {dst.relative_to(work)} from {carry}", flush=True)


def dense_reference(name: str, weights: Path, data_src: str, limit: int | None) -> dict:
    """The pretrained model's accuracy on the test split and its measured latency (the budgets' base)."""
    net, shape = build_model(name, weights)
    ms = measured_ms(open_device("local"), net, shape)
    return {"accuracy": evaluate(net, load_data(data_src, limit=limit).val)["accuracy"], "measured_ms": ms,
            "macs": int(network_macs(build_layer_space(net, shape))), "params": sum(p.numel() for p in net.parameters())}


def run_cell(name, weights, data_src, recipe: dict, frac, method, dense, work: Path,
             min_keep: float | None = None) -> dict:
    """One cell: a compress run, the Torch-Pruning baseline, or the dense model fine-tuned alike (frac None);
    ``recipe``: train_limit, epochs, batch_size, lr."""
    limit, epochs = recipe["train_limit"], recipe["epochs"]
    out = work / cell_name((name, frac, method))  # compress and fine_tune resume from what is there when it fits
    t0 = time.perf_counter()
    base = {"model": name, "budget": frac, "method": method, "epochs": epochs}
    settings = None
    if min_keep is not None and method in ("ecc", "halp", "netadapt", "global"):
        settings = get_method(method).settings(min_keep=min_keep)
        base["min_keep"] = min_keep
    try:
        if method == "dense-ft":
            return base | dense_finetuned(name, weights, data_src, recipe, dense, out) | wall(t0)
        # The budget goes to compress as a fraction: compress prices it against its cost model's dense prediction and
        # decides on drift-corrected measurements, so a busy neighbour core or a slower VM cannot move it. (An absolute
        # ms budget from a dense timing taken at the cell's start did: one such timing read 1.35 ms, quiet is 0.67.)
        net, shape = build_model(name, weights)
        dense_onnx = to_onnx_bytes(net, shape)
        if method == "tp":
            return base | tp_cell(name, weights, data_src, recipe, frac, dense, out) | wall(t0)
        cfg = CompressConfig(model=name, weights=str(weights), data=data_src, metric="latency",
                             budget=str(frac), method=method, epochs=epochs, out=str(out), data_limit=limit,
                             lr=recipe["lr"], batch_size=recipe["batch_size"], settings=settings)
        s = compress(cfg)
        over = ratio_to_dense(open_device("local"), (out / "model.onnx").read_bytes(), dense_onnx) / frac
    except InfeasibleBudget as exc:  # the method's floor (as the cost model prices it) is above the budget
        return base | {"stopped_by_floor": str(exc)} | wall(t0)
    except Exception as exc:  # one failed cell must not lose the others; it is recorded as failed
        return base | {"error": repr(exc)} | wall(t0)
    return base | {"accuracy": s["compressed"]["accuracy"], "dense_accuracy": s["dense"]["accuracy"],
                   "measured_ms": s["measured_cost"], "predicted_ms": s["predicted_cost"],
                   "budget_ms": s["budget_abs"], "measured_over_budget": over,
                   "measured_over_budget_at_cell_end": s["measured_over_budget_drift_corrected"],
                   "macs": s["compressed"]["macs"],
                   "params": s["compressed"]["params"], "widths": s["compressed"]["widths"],
                   "warnings": s["warnings"], "closed_loop_stopped": s["closed_loop"]["stopped"],
                   "closed_loop": [{k: r[k] for k in ("predicted", "measured", "measured_over_budget")}
                                   for r in s["closed_loop"]["rounds"]],
                   "accuracy_before_fine_tune": s["schedule"]["history"][0].get("accuracy_before_fine_tune"),
                   "phases_s": s["timings_s"], "estimates_s": s["estimates_s"],
                   "resumed_selection": s["resumed_selection"]} | wall(t0)


def recipe_data(data_src: str, recipe: dict):
    """The mode's training data, batched as its recipe says."""
    return load_data(data_src, batch_size=recipe["batch_size"], limit=recipe["train_limit"])


def tune_alike(model, data, recipe: dict, teacher, out: Path) -> None:
    """Fine-tune ``model`` with the mode's recipe, distilled from ``teacher``, as compress does (resumable)."""
    epochs = recipe["epochs"]
    fine_tune(model, data, epochs, lr=recipe["lr"], warmup_epochs=min(1.0, 0.1 * epochs),
              teacher=copy.deepcopy(teacher).eval(), checkpoint_dir=out / "checkpoints")


def dense_finetuned(name, weights, data_src, recipe: dict, dense, out: Path) -> dict:
    """The reference: the pretrained dense model fine-tuned with the same recipe (distilled from itself)."""
    data = recipe_data(data_src, recipe)
    net, shape = build_model(name, weights)
    tick = time.perf_counter()
    tune_alike(net, data, recipe, net, out)
    return {"accuracy": evaluate(net, data.val)["accuracy"], "dense_accuracy": dense["accuracy"],
            "measured_ms": measured_ms(open_device("local"), net, shape), "params": dense["params"],
            "phases_s": {"fine_tuning": round(time.perf_counter() - tick, 1)}}


def tp_cell(name, weights, data_src, recipe: dict, frac, dense, out: Path) -> dict:
    """Torch-Pruning's pruner bisected to the measured budget, then the same fine-tuning as compress."""
    import torch
    import torch_pruning as tp

    data = recipe_data(data_src, recipe)
    net, shape = build_model(name, weights)
    device = open_device("local")
    tick = time.perf_counter()
    saved = out / "tp_selection.pt"  # resumable: the measured bisection is not repeatable run to run
    if saved.is_file():
        pruned, search = torch.load(saved, weights_only=False).values()
    else:
        pruned, search = prune_to_measured_budget(net, shape, device, frac)
        recalibrate_bn(pruned, data.train)
        out.mkdir(parents=True, exist_ok=True)
        torch.save({"model": pruned, "search": search}, saved)
    phases = {"selection": round(time.perf_counter() - tick, 1)}
    tick = time.perf_counter()
    tune_alike(pruned, data, recipe, net, out)
    phases["fine_tuning"] = round(time.perf_counter() - tick, 1)
    pruned = on_cpu(pruned)  # fine-tuned on a GPU, where there is one; measured and counted on the CPU
    macs, params = tp.utils.count_ops_and_params(pruned, torch.zeros(*shape))
    over = ratio_to_dense(device, to_onnx_bytes(pruned, shape), to_onnx_bytes(net, shape)) / frac
    return {"accuracy": evaluate(pruned, data.val)["accuracy"], "dense_accuracy": dense["accuracy"],
            "measured_ms": measured_ms(device, pruned, shape), "measured_over_budget": over, "macs": int(macs),
            "params": int(params),
            "tp_search": search, "phases_s": phases}


def wall(t0: float) -> dict:
    return {"wall_s": round(time.perf_counter() - t0, 1)}


def describe(r: dict) -> str:
    if "error" in r:
        return f"{r['method']} @ {r['budget']}: FAILED {r['error']}"
    if "stopped_by_floor" in r:
        return f"{r['method']} @ {r['budget']}: NO MODEL, the method's floor is above the budget: {r['stopped_by_floor']}"
    over = f" ({r['measured_over_budget']:.2f}× budget)" if "measured_over_budget" in r else ""
    return (f"{r['method']:9s} @ {r['budget']}: acc {r['accuracy']:.2%}  measured {r['measured_ms']:.4f} ms{over}  "
            f"[{r['wall_s']} s]")


def save(path: Path, state: dict) -> None:
    """Write the results atomically (a session ending mid-write must not lose finished cells)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(state, indent=1, default=float))
    os.replace(tmp, path)


def check_targets(runs: list[dict]) -> dict:
    """The issue's medium-mode targets, per model and budget; None where a needed cell is missing."""
    ok = [r for r in runs if "accuracy" in r]
    out = {}
    for model in sorted({r["model"] for r in ok}):
        by = {(r["budget"], r["method"]): r for r in ok if r["model"] == model}
        ref = by.get((None, "dense-ft"))
        for frac in sorted({r["budget"] for r in runs if r["model"] == model and r["budget"] is not None},
                           reverse=True):
            ours = [by[(frac, m)] for m in ("ecc", "halp") if (frac, m) in by]
            floors = {r["method"]: r["stopped_by_floor"] for r in runs
                      if r["model"] == model and r["budget"] == frac and "stopped_by_floor" in r}
            if floors:
                out[f"{model}@{frac}"] = {"stopped_by_floor": floors}
            if not ours:
                continue
            best = max(ours, key=lambda r: r["accuracy"])
            cell = {"best_of_ecc_halp": best["method"], "best_accuracy": best["accuracy"]}
            if ref:
                cell["best_minus_dense_ft_pt"] = 100 * (best["accuracy"] - ref["accuracy"])
                cell["within_dense_ft"] = cell["best_minus_dense_ft_pt"] >= -(1.0 if frac >= 0.5 else 3.0)
            for other, margin in (("uniform", 1.0), ("tp", 0.5)):
                if (frac, other) in by:
                    gap = 100 * (best["accuracy"] - by[(frac, other)]["accuracy"])
                    cell[f"best_minus_{other}_pt"] = gap
                    cell[f"beats_{other}"] = gap >= margin
            cell["budget_ratio_ok"] = {m: 0.95 <= r["measured_over_budget"] <= 1.03
                                       for (b, m), r in by.items() if b == frac and "measured_over_budget" in r}
            if (frac, "ecc") in by and "phases_s" in by[(frac, "ecc")]:
                phases = by[(frac, "ecc")]["phases_s"]  # this process's phases: a resumed run's cover only the rest
                cell["ecc_admm_share_of_wall"] = (None if by[(frac, "ecc")].get("resumed_selection")
                                                  else phases.get("selection", 0.0) / sum(phases.values()))
            out[f"{model}@{frac}"] = out.get(f"{model}@{frac}", {}) | cell
    return out


def figure(state: dict):
    """One panel per model: accuracy vs measured latency as a fraction of dense (drift-free), dense and dense-ft
    points, budget lines, one marker per method."""
    from matplotlib.figure import Figure

    models = sorted(state["dense"])
    fig = Figure(figsize=(7 * len(models), 4.8), layout="constrained")
    markers = dict(zip(METHODS.split(","), "*oDs^vPX"))
    for ax, model in zip(fig.subplots(1, len(models), squeeze=False)[0], models):
        dense = state["dense"][model]
        ax.scatter([1.0], [100 * dense["accuracy"]], marker="x", color="black", s=80, label="dense (pretrained)",
                   zorder=3)
        runs = [r for r in state["runs"] if r["model"] == model and "accuracy" in r]
        for frac in sorted({r["budget"] for r in runs if r["budget"] is not None}):
            ax.axvline(frac, color="grey", ls="--", lw=1)
            ax.text(frac, 0.02, f" budget {frac:g}× dense", rotation=90, va="bottom", color="grey", fontsize=8,
                    transform=ax.get_xaxis_transform())
        for i, method in enumerate(METHODS.split(",")):  # one colour per method in every panel
            pts = [(r["budget"] * r["measured_over_budget"] if r["budget"] else 1.0, 100 * r["accuracy"])
                   for r in runs if r["method"] == method]
            if pts:
                label = "dense-ft (dense, fine-tuned alike)" if method == "dense-ft" else method
                ax.scatter(*zip(*pts), marker=markers.get(method, "o"), s=60, color=f"C{i}", label=label, zorder=3)
        ax.set_xlabel("measured latency ÷ dense measured alongside (local CPU, onnxruntime, 1 thread)")
        ax.set_ylabel("top-1 accuracy on the 10k test split (%)")
        ax.set_title(f"{model}: {state['mode']} mode, {state['epochs']} fine-tuning epochs")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    return fig


def plot(state: dict, path: Path) -> None:
    """Draw ``figure(state)`` into ``path`` (PNG)."""
    try:
        fig = figure(state)
    except ImportError:
        print("matplotlib not installed (pip install 'edgeprune[bench]'): no plot", file=sys.stderr)
        return
    fig.savefig(path, dpi=120)

if __name__ == "__main__":
    main()
