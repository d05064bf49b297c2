"""Benchmark: joint layer + channel pruning vs ecc vs channel-only slimming at a measured-latency budget.

Usage: python bench/joint_pruning.py [--quick] [--model resnet56] [--budget 0.5] [--methods joint,ecc,slim]
       [--epochs 3] [--sparse-epochs 2] [--train-limit N] [--polar-lambda 5e-3] [--out joint_pruning.json]
Budget: a fraction of the dense model's latency measured on the local CPU (onnxruntime, 1 thread). Every method
gets the same training: ``sparse-epochs`` epochs before pruning (polarization sparse training for joint and slim,
as many ADMM steps, at most, for ecc) and ``epochs`` of fine-tuning after. slim = joint with block removal off
(network slimming with the polarization regularizer). For joint and slim the saving is split between depth
(blocks removed) and width (channels removed), predicted by the cost model and measured (dense, blocks-only,
channels-only and final models, Shapley split over both orders).
Needs ../shared/data (CIFAR-10-JPEG and the pretrained ResNets); skips cleanly without it.
Writes bench/results/<out> (default joint_pruning.json).
"""
from __future__ import annotations

import argparse
import shutil
import copy
import json
import math
import time
from pathlib import Path

from compression_quality import RESULTS, SHARED, adapt_dense

from edgeprune.pipeline import CompressConfig, compress
from edgeprune.data import load_data
from edgeprune.formats import to_onnx_bytes
from edgeprune.measure.registry import open_device
from edgeprune.measure.settings import MeasureSettings
from edgeprune.models import build_model
from edgeprune.models.layer_space import build_layer_space
from edgeprune.prune.artifact import load_compressed
from edgeprune.prune.ecc import EccSettings
from edgeprune.structure.blocks import remove_blocks
from edgeprune.prune.joint.settings import JointSettings
from edgeprune.prune.joint.split import saving_split
from edgeprune.structure.physical import apply_kept
from edgeprune.train import evaluate

METHODS = ("joint", "ecc", "slim")
ECC_STEPS = 20  # SGD steps per ADMM round


def measure_ms(model, shape) -> float:
    """Median latency of ``model`` on the local CPU (onnxruntime, 1 thread, at least 1 s of repeats)."""
    result = open_device("local").measure(to_onnx_bytes(model, shape), "onnxruntime", MeasureSettings(min_duration_s=1))
    return result.latency.median


def measured_split(name: str, weights: Path, summary: dict, dense_ms: float) -> dict:
    """Depth-vs-width split of the measured saving: blocks-only and channels-only versions of the dense model."""
    net, shape = build_model(name, weights)
    space = build_layer_space(net, shape)
    info = load_compressed(summary["artifacts"]["model_dir"])[1]
    depth_only = measure_ms(remove_blocks(copy.deepcopy(net), info["blocks_removed"]), shape)
    width_only = measure_ms(apply_kept(net, space, info["kept"]), shape)
    final = measure_ms(load_compressed(summary["artifacts"]["model_dir"])[0], shape)
    return saving_split(dense_ms, depth_only, width_only, final)


def config(method: str, args, name: str, weights: Path, budget_ms: float, data_src: str, limit: int | None,
           work: Path) -> CompressConfig:
    """The compress configuration of one method at the shared training budget."""
    base = CompressConfig(model=name, weights=str(weights), data=data_src, metric="latency", budget=f"{budget_ms}ms",
                          method="ecc" if method == "ecc" else "joint", epochs=args.epochs,
                          out=str(work / f"joint-bench-{name}-{args.budget}-{method}"), data_limit=limit, lr=0.01)
    if method == "ecc":
        steps_per_epoch = len(load_data(data_src, limit=limit).train)
        base.settings = EccSettings(iters=max(1, math.ceil(args.sparse_epochs * steps_per_epoch / ECC_STEPS)),
                               steps=ECC_STEPS)
    else:
        base.settings = JointSettings(lam=args.polar_lambda, sparse_epochs=args.sparse_epochs,
                                   max_blocks=0 if method == "slim" else None,
                                   histogram_png=str(work / f"joint-bench-{name}-{args.budget}-{method}-gamma.png"))
    return base


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="5k training images, 1 sparse + 1 fine-tuning epoch")
    ap.add_argument("--model", default="resnet56")
    ap.add_argument("--budget", type=float, default=0.5, help="fraction of the dense measured latency")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--epochs", type=int, default=None, help="fine-tuning epochs after pruning")
    ap.add_argument("--sparse-epochs", type=int, default=None, help="training epochs before pruning")
    ap.add_argument("--train-limit", type=int, default=None)
    ap.add_argument("--polar-lambda", type=float, default=JointSettings.lam)
    ap.add_argument("--out", default="joint_pruning.json", help="result file name under bench/results/")
    ap.add_argument("--update", action="store_true", help="replace only these methods' runs in the results file")
    args = ap.parse_args()
    unknown = sorted(set(args.methods.split(",")) - set(METHODS))
    if unknown:
        ap.error(f"unknown method(s) {unknown}; choose from {', '.join(METHODS)}")
    if not (SHARED / "cifar10-jpeg" / "train.npz").is_file():
        print(f"skipped: {SHARED}/cifar10-jpeg not found")
        return
    args.epochs = args.epochs if args.epochs is not None else (1 if args.quick else 3)
    args.sparse_epochs = args.sparse_epochs if args.sparse_epochs is not None else (1 if args.quick else 2)
    limit = args.train_limit if args.train_limit is not None else (5000 if args.quick else None)
    data_src = f"npz:{SHARED / 'cifar10-jpeg'}"
    work = RESULTS / "work"
    work.mkdir(parents=True, exist_ok=True)
    weights = adapt_dense(args.model, data_src, 1, limit, work)
    net, shape = build_model(args.model, weights)
    dense_acc = evaluate(net, load_data(data_src, limit=limit).val)["accuracy"]
    dense_ms = measure_ms(net, shape)
    dense_widths = build_layer_space(net, shape).dense_widths()
    budget_ms = args.budget * dense_ms
    print(f"{args.model}: dense accuracy {dense_acc:.2%}, measured {dense_ms:.4f} ms; budget {args.budget} → "
          f"{budget_ms:.4f} ms (local CPU, onnxruntime, 1 thread)", flush=True)
    runs = []
    for method in args.methods.split(","):
        t0 = time.perf_counter()
        cfg = config(method, args, args.model, weights, budget_ms, data_src, limit, work)
        shutil.rmtree(cfg.out, ignore_errors=True)  # a stale run's checkpoints would be resumed
        s = compress(cfg)
        run = {"method": method, "accuracy": s["compressed"]["accuracy"], "dense_accuracy": dense_acc,
               "measured_ms": s["measured_cost"], "predicted_ms": s["predicted_cost"],
               "measured_over_budget": s["measured_cost"] / budget_ms, "macs": s["compressed"]["macs"],
               "params": s["compressed"]["params"], "blocks_removed": s.get("blocks_removed", []),
               "channels_removed": sum(dense_widths[g] - w for g, w in s["compressed"]["widths"].items()),
               "widths": s["compressed"]["widths"]}
        if method != "ecc":
            run["split_predicted"] = s["saving_split"]["predicted"]
            run["split_measured"] = measured_split(args.model, weights, s, dense_ms)
        run["wall_s"] = round(time.perf_counter() - t0, 1)
        runs.append(run)
        print(f"  {method}: done in {run['wall_s']} s", flush=True)
    if args.update and (RESULTS / args.out).is_file():
        fresh = {r["method"] for r in runs}
        runs = [r for r in json.loads((RESULTS / args.out).read_text())["runs"] if r["method"] not in fresh] + runs
    print_table(runs, budget_ms)
    result = {"mode": "quick" if args.quick else "full", "model": args.model, "budget": args.budget,
              "budget_ms": budget_ms, "dense_ms": dense_ms, "dense_accuracy": dense_acc, "epochs": args.epochs,
              "sparse_epochs": args.sparse_epochs, "polar_lambda": args.polar_lambda, "train_limit": limit,
              "device": "local CPU, onnxruntime, 1 thread (latency measured)", "runs": runs}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / args.out).write_text(json.dumps(result, indent=1, default=float))
    print(f"wrote {RESULTS / args.out}")


def print_table(runs: list[dict], budget_ms: float) -> None:
    """One row per method: accuracy, measured latency against the budget, blocks/channels, depth share."""
    print(f"{'method':7s} {'acc':>7s} {'measured ms':>12s} {'× budget':>9s} {'blocks':>7s} {'channels':>9s} "
          f"{'depth share pred/meas':>22s}")
    for r in runs:
        shares = (f"{r['split_predicted']['depth_share']:.0%} / {r['split_measured']['depth_share']:.0%}"
                  if "split_measured" in r else "— (width only)")
        print(f"{r['method']:7s} {r['accuracy']:7.2%} {r['measured_ms']:12.4f} {r['measured_ms'] / budget_ms:9.2f} "
              f"{len(r['blocks_removed']):7d} {r['channels_removed']:9d} {shares:>22s}")


if __name__ == "__main__":
    main()
