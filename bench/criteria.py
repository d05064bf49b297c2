"""Benchmark: channel criteria (l1, l2, bn, fpgm, taylor, apoz) under one method and budget, same fine-tune each.

Usage: python bench/criteria.py [--quick] [--model resnet56] [--method uniform] [--budget 0.5]
       [--criteria l1,l2,bn,fpgm,taylor,apoz] [--schedule oneshot] [--epochs 2] [--train-limit N]
       [--data npz:../shared/data/cifar10-jpeg] [--weights PATH] [--out bench/results/criteria.json]
Widths are the method's (equal for every criterion under uniform); only which channels are kept changes.
Needs ../shared/data (CIFAR-10-JPEG and the pretrained ResNets) for zoo ResNets; skips cleanly without it.
Writes bench/results/criteria.json.
"""
from __future__ import annotations

import argparse
import shutil
import json
import time
from pathlib import Path

import torch

from edgeprune.pipeline import CompressConfig, compress
from edgeprune.errors import EdgepruneError
from edgeprune.prune.importance import CRITERIA

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
RESULTS = Path(__file__).parent / "results"
WEIGHTS = {"resnet20": "resnet20-12fca82f.th", "resnet32": "resnet32-d509ac18.th",
           "resnet44": "resnet44-014dd654.th", "resnet56": "resnet56-4bfd9763.th"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="10k training images, 1 epoch, a small calibration")
    ap.add_argument("--model", default="resnet56")
    ap.add_argument("--method", default="uniform")
    ap.add_argument("--budget", default="0.5", help="fraction of the dense predicted latency, or e.g. 3ms")
    ap.add_argument("--criteria", default=",".join(CRITERIA))
    ap.add_argument("--schedule", default="oneshot")
    ap.add_argument("--schedule-steps", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--train-limit", type=int, default=None)
    ap.add_argument("--data", default=f"npz:{SHARED / 'cifar10-jpeg'}")
    ap.add_argument("--weights", default=None, help="dense checkpoint (default: the pretrained CIFAR ResNet)")
    ap.add_argument("--out", type=Path, default=RESULTS / "criteria.json")
    args = ap.parse_args()
    weights = args.weights or (str(SHARED / "pretrained" / "cifar-resnet" / WEIGHTS[args.model])
                               if args.model in WEIGHTS else None)
    data_path = args.data.removeprefix("npz:") if args.data.startswith("npz:") else None
    missing = [p for p in (data_path, weights) if p and not Path(p).exists()]
    if missing:
        print(f"skipped: {', '.join(missing)} not found")
        return
    epochs = args.epochs if args.epochs is not None else (1 if args.quick else 3)
    limit = args.train_limit if args.train_limit is not None else (10000 if args.quick else None)
    work = RESULTS / "work"
    runs = []
    print(f"{args.model}: {args.method} at budget {args.budget} of dense latency (local CPU, onnxruntime, 1 thread), "
          f"{args.schedule} schedule, {epochs} fine-tuning epoch(s)", flush=True)
    for criterion in args.criteria.split(","):
        cfg = CompressConfig(model=args.model, weights=weights, data=args.data, metric="latency", budget=args.budget,
                             method=args.method, epochs=epochs, out=str(work / f"criteria-{args.model}-{criterion}"),
                             data_limit=limit, lr=0.01, criterion=criterion, schedule=args.schedule,
                             schedule_steps=args.schedule_steps, points=8 if args.quick else 32,
                             network_variants=8 if args.quick else 40)
        t0 = time.perf_counter()
        torch.manual_seed(0)  # the same dense model for every criterion, also without a checkpoint
        try:
            shutil.rmtree(cfg.out, ignore_errors=True)  # a stale run's checkpoints would be resumed
            s = compress(cfg)
        except (EdgepruneError, ValueError, RuntimeError) as exc:  # one failed criterion must not lose the others
            runs.append({"criterion": criterion, "error": repr(exc)})
            print(f"  {criterion:7s} FAILED {exc!r}", flush=True)
            continue
        run = {"criterion": criterion, "accuracy": s["compressed"]["accuracy"],
               "dense_accuracy": s["dense"]["accuracy"], "measured_ms": s["measured_cost"],
               "predicted_ms": s["predicted_cost"], "budget_ms": s["budget_abs"], "macs": s["compressed"]["macs"],
               "params": s["compressed"]["params"], "widths": s["compressed"]["widths"],
               "wall_s": round(time.perf_counter() - t0, 1)}
        runs.append(run)
        print(f"  {criterion:7s} acc {run['accuracy']:.2%} (dense {run['dense_accuracy']:.2%})  measured "
              f"{run['measured_ms']:.4f} ms  predicted {run['predicted_ms']:.4f} ms  MACs {run['macs']:,}  "
              f"[{run['wall_s']} s]", flush=True)
    print(table(runs))
    result = {"model": args.model, "method": args.method, "budget": args.budget, "schedule": args.schedule,
              "schedule_steps": args.schedule_steps, "epochs": epochs, "train_limit": limit, "data": args.data,
              "mode": "quick" if args.quick else "full", "device": "local CPU, onnxruntime, 1 thread", "runs": runs}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1, default=float))
    print(f"saved {args.out}")


def table(runs: list[dict]) -> str:
    """Criteria ranked by accuracy after the same fine-tune."""
    lines = [f"{'criterion':10s} {'accuracy':>9s} {'Δ vs dense':>11s} {'measured ms':>12s}"]
    for r in sorted((r for r in runs if "error" not in r), key=lambda r: -r["accuracy"]):
        delta = 100 * (r["accuracy"] - r["dense_accuracy"])
        lines.append(f"{r['criterion']:10s} {r['accuracy']:9.2%} {delta:+9.2f}pt {r['measured_ms']:12.4f}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
