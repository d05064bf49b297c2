"""Benchmark: Deep Compression of a CIFAR ResNet on CIFAR-10-JPEG — size at each stage and accuracy change.

Usage: python bench/deep_compression.py [--model resnet56] [--prune 0.85] [--epochs 3] [--lr 0.05]
       [--conv-bits 5] [--conv-pos-bits 5] [--train-limit 10000] [--out deep_compression.json]
Needs ../shared/data (skips cleanly without it). Writes bench/results/<out>.
The defaults are the run reported in the README; deep_compression-p90-*.json are the earlier, missed attempts.
Target (issue): ≥ 15× total with ≤ 1 pt accuracy loss after fine-tuning.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from edgeprune.data import load_data
from edgeprune.deepcompress.pipeline import deep_compress
from edgeprune.models import build_model

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
RESULTS = Path(__file__).parent / "results"
WEIGHTS = {"resnet20": "resnet20-12fca82f.th", "resnet56": "resnet56-4bfd9763.th"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="resnet56")
    ap.add_argument("--prune", type=float, default=0.85)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--centroid-epochs", type=int, default=1)
    ap.add_argument("--train-limit", type=int, default=10000)
    ap.add_argument("--lr", type=float, default=0.05, help="retraining learning rate after pruning")
    ap.add_argument("--conv-bits", type=int, default=5)
    ap.add_argument("--fc-bits", type=int, default=5)
    ap.add_argument("--conv-pos-bits", type=int, default=5)
    ap.add_argument("--out", default="deep_compression.json", help="result file name under bench/results/")
    args = ap.parse_args()
    if not (SHARED / "cifar10-jpeg" / "train.npz").is_file():
        print(f"skipped: {SHARED}/cifar10-jpeg not found")
        return
    data = load_data(f"npz:{SHARED / 'cifar10-jpeg'}", limit=args.train_limit)
    net, shape = build_model(args.model, SHARED / "pretrained" / "cifar-resnet" / WEIGHTS[args.model])
    summary, _ = deep_compress(net, data, prune=args.prune, epochs=args.epochs, lr=args.lr,
                               centroid_epochs=args.centroid_epochs, conv_bits=args.conv_bits, fc_bits=args.fc_bits,
                               conv_pos_bits=args.conv_pos_bits, input_shape=shape, say=print)
    result = {"model": args.model, "prune": args.prune, "epochs": args.epochs, "lr": args.lr,
              "train_limit": args.train_limit, "summary": summary}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / args.out).write_text(json.dumps(result, indent=1, default=str))
    print(json.dumps(summary, indent=1, default=str)[:3000])


if __name__ == "__main__":
    main()
