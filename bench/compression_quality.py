"""Benchmark: ecc vs netadapt vs uniform vs global at equal budgets of dense *measured* latency on the local CPU.

Usage: python bench/compression_quality.py [--quick] [--models resnet20] [--budgets 0.5,0.3]
       [--methods ecc,netadapt,uniform,global,global-r8] [--epochs 1] [--train-limit N]
Needs ../shared/data (CIFAR-10-JPEG and the pretrained ResNets); skips cleanly without it.
Writes bench/results/compression_quality.json and compression_quality.png.
"""
from __future__ import annotations

import argparse
import shutil
import json
import sys
import time
from pathlib import Path

import torch

from edgeprune.compress import CompressConfig, compress
from edgeprune.data import load_data
from edgeprune.measure.export import to_onnx_bytes
from edgeprune.measure.registry import open_device
from edgeprune.measure.settings import MeasureSettings
from edgeprune.models import build_model
from edgeprune.prune.ecc import EccSettings
from edgeprune.train import evaluate, fine_tune

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
RESULTS = Path(__file__).parent / "results"
WEIGHTS = {"resnet20": "resnet20-12fca82f.th", "resnet56": "resnet56-4bfd9763.th"}


def adapt_dense(name: str, data_src: str, epochs: int, limit: int | None, work: Path) -> Path:
    """Pretrained weights fine-tuned briefly on the JPEG copy (cached)."""
    path = work / f"{name}-adapted-e{epochs}-n{limit}.pt"
    if path.is_file():
        return path
    net, _ = build_model(name, SHARED / "pretrained" / "cifar-resnet" / WEIGHTS[name])
    if epochs:
        fine_tune(net, load_data(data_src, limit=limit), epochs, lr=0.01)
    torch.save(net.state_dict(), path)
    return path


def measured_dense_latency(name: str, weights: Path) -> dict:
    net, shape = build_model(name, weights)
    result = open_device("local").measure(to_onnx_bytes(net, shape), "onnxruntime", MeasureSettings(min_duration_s=1))
    return {"median_ms": result["latency_ms"]["median"], "run_cv": result["latency_ms"]["run_cv"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="10k training images, 1 epoch, short ADMM/NetAdapt")
    ap.add_argument("--models", default="resnet20")
    ap.add_argument("--budgets", default="0.5,0.3")
    ap.add_argument("--methods", default="ecc,netadapt,uniform,global,global-r8")
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--train-limit", type=int, default=None)
    ap.add_argument("--update", action="store_true",
                    help="replace only these runs (model, budget, method) in the existing results file")
    args = ap.parse_args()
    if not (SHARED / "cifar10-jpeg" / "train.npz").is_file():
        print(f"skipped: {SHARED}/cifar10-jpeg not found")
        return
    epochs = args.epochs if args.epochs is not None else (1 if args.quick else 5)
    limit = args.train_limit if args.train_limit is not None else (10000 if args.quick else None)
    data_src = f"npz:{SHARED / 'cifar10-jpeg'}"
    work = RESULTS / "work"
    work.mkdir(parents=True, exist_ok=True)
    ecc = EccSettings(iters=20 if args.quick else 40, steps=20)
    runs = []
    for name in args.models.split(","):
        weights = adapt_dense(name, data_src, 1, limit, work)
        dense_acc = evaluate(build_model(name, weights)[0], load_data(data_src, limit=limit).val)["accuracy"]
        dense = measured_dense_latency(name, weights)
        print(f"{name}: dense accuracy {dense_acc:.2%}, measured {dense['median_ms']:.4f} ms (local CPU, "
              f"onnxruntime, 1 thread)", flush=True)
        for frac in map(float, args.budgets.split(",")):
            budget_ms = frac * dense["median_ms"]
            for method in args.methods.split(","):
                base, _, rounding = method.partition("-r")
                cfg = CompressConfig(model=name, weights=str(weights), data=data_src, metric="latency",
                                     budget=f"{budget_ms}ms", method=base, epochs=epochs,
                                     out=str(work / f"{name}-{frac}-{method}"), round_to=int(rounding) if rounding
                                     else None, data_limit=limit, ecc=ecc, lr=0.01,
                                     netadapt_tune_steps=5 if args.quick else 50,
                                     netadapt_step=0.1 if args.quick else 0.05)
                t0 = time.perf_counter()
                try:
                    shutil.rmtree(cfg.out, ignore_errors=True)  # a stale run's checkpoints would be resumed
                    s = compress(cfg)
                except Exception as exc:  # one failed run must not lose the others; it is reported as failed
                    runs.append({"model": name, "budget": frac, "method": method, "error": repr(exc)})
                    print(f"  {method} @ {frac}: FAILED {exc!r}", flush=True)
                    continue
                run = {"model": name, "budget": frac, "budget_ms": budget_ms, "method": method,
                       "accuracy": s["compressed"]["accuracy"], "dense_accuracy": dense_acc,
                       "measured_ms": s["measured_cost"], "predicted_ms": s["predicted_cost"],
                       "measured_over_budget": s["measured_cost"] / budget_ms, "macs": s["compressed"]["macs"],
                       "params": s["compressed"]["params"], "widths": s["compressed"]["widths"],
                       "closed_loop": [{k: r[k] for k in ("predicted", "measured", "measured_over_budget")}
                                       for r in s["closed_loop"]["rounds"]],
                       "wall_s": round(time.perf_counter() - t0, 1)}
                runs.append(run)
                print(f"  {method:10s} @ {frac}: acc {run['accuracy']:.2%}  measured {run['measured_ms']:.4f} ms "
                      f"({run['measured_over_budget']:.2f}× budget)  predicted {run['predicted_ms']:.4f} ms  "
                      f"MACs {run['macs']:,}  [{run['wall_s']} s]", flush=True)
    path = RESULTS / "compression_quality.json"
    if args.update and path.is_file():
        fresh = {(r["model"], r["budget"], r["method"]) for r in runs}
        runs = [r for r in json.loads(path.read_text())["runs"]
                if (r["model"], r["budget"], r["method"]) not in fresh] + runs
    result = {"mode": "quick" if args.quick else "full", "epochs": epochs, "train_limit": limit,
              "device": "local CPU, onnxruntime, 1 thread (latency measured)", "runs": runs,
              "targets": check_targets(runs)}
    RESULTS.mkdir(exist_ok=True)
    path.write_text(json.dumps(result, indent=1, default=float))
    plot(runs, RESULTS / "compression_quality.png")
    print(json.dumps(result["targets"], indent=1))


def check_targets(runs: list[dict]) -> dict:
    """ecc ≥ uniform + 1.0 pt and ≥ global + 0.5 pt (best of global with/without rounding); ecc ≤ 1.03 × budget."""
    out = {}
    ok = [r for r in runs if "error" not in r]
    for model in sorted({r["model"] for r in ok}):
        for frac in sorted({r["budget"] for r in ok}):
            by = {r["method"]: r for r in ok if r["model"] == model and r["budget"] == frac}
            if "ecc" not in by:
                continue
            e = by["ecc"]["accuracy"]
            glob = max((by[m]["accuracy"] for m in ("global", "global-r8") if m in by), default=None)
            out[f"{model}@{frac}"] = {
                "ecc_minus_uniform_pt": None if "uniform" not in by else 100 * (e - by["uniform"]["accuracy"]),
                "ecc_minus_best_global_pt": None if glob is None else 100 * (e - glob),
                "ecc_measured_over_budget": by["ecc"]["measured_over_budget"],
                "met": ("uniform" in by and e >= by["uniform"]["accuracy"] + 0.01)
                and (glob is None or e >= glob + 0.005) and by["ecc"]["measured_over_budget"] <= 1.03}
    return out


def plot(runs: list[dict], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed (pip install 'edgeprune[bench]'): no plot", file=sys.stderr)
        return
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for method in sorted({r["method"] for r in runs if "error" not in r}):
        pts = sorted((r["measured_ms"], 100 * r["accuracy"]) for r in runs if r.get("method") == method
                     and "error" not in r)
        ax.plot(*zip(*pts), marker="o", label=method)
    ax.set_xlabel("measured latency on local CPU (ms, onnxruntime, 1 thread)")
    ax.set_ylabel("top-1 accuracy (%)")
    ax.set_title("accuracy at equal measured-latency budgets")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
