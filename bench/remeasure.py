"""Re-measure every finished cell of a compression benchmark beside the dense model, back to back.

Usage: python bench/remeasure.py --medium [--rounds 5]
A cell's own final measurement and the dense measurement that set its budget can be hours apart; on a shared machine
the speed drifts between them. Here the dense and the compressed model are measured alternately, ``rounds`` times,
so ``over_budget_same_time`` = (compressed ÷ dense measured together) ÷ budget fraction is free of that drift.
Writes bench/results/compression_quality-MODE-remeasured.json (apart from the running benchmark's own file).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import torch

from edgeprune.formats import to_onnx_bytes
from edgeprune.measure.registry import open_device
from edgeprune.measure.settings import MeasureSettings
from edgeprune.models import build_model

from compression_quality import cell_key, cell_name

RESULTS = Path(__file__).parent / "results"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
WEIGHTS = {"resnet20": "resnet20-12fca82f.th", "resnet56": "resnet56-4bfd9763.th"}


def cell_onnx(work: Path, run: dict) -> bytes | None:
    """The cell's compressed model as ONNX bytes (latency depends on its structure only), or None."""
    out = work / cell_name(cell_key(run))
    if (out / "model.onnx").is_file():
        return (out / "model.onnx").read_bytes()
    if (out / "tp_selection.pt").is_file():
        saved = torch.load(out / "tp_selection.pt", weights_only=False)  # our own file, written by the benchmark
        _, shape = build_model(run["model"])
        return to_onnx_bytes(saved["model"], shape)
    return None


def median_ms(device, onnx: bytes) -> float:
    result = device.measure(onnx, "onnxruntime", MeasureSettings(threads=1))
    return result.latency.median


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mode", default="medium", choices=("quick", "medium", "full"))
    ap.add_argument("--medium", dest="mode", action="store_const", const="medium")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    source = RESULTS / f"compression_quality-{args.mode}.json"
    if not source.is_file():
        print(f"skipped: {source} not found (run bench/compression_quality.py --{args.mode} first)")
        return
    state = json.loads(source.read_text())
    work = RESULTS / "work" / args.mode
    device = open_device("local")
    dense_onnx = {}
    cells = []
    for run in state["runs"]:
        if "error" in run or run.get("budget") is None:
            continue
        onnx = cell_onnx(work, run)
        if onnx is None:
            cells.append({k: run[k] for k in ("model", "budget", "method")} | {"skipped": "no model file"})
            continue
        if run["model"] not in dense_onnx:
            net, shape = build_model(run["model"], SHARED / "pretrained" / "cifar-resnet" / WEIGHTS[run["model"]])
            dense_onnx[run["model"]] = to_onnx_bytes(net, shape)
        dense_ms, ms = [], []
        for _ in range(args.rounds):
            dense_ms.append(median_ms(device, dense_onnx[run["model"]]))
            ms.append(median_ms(device, onnx))
        ratio = statistics.median(m / d for m, d in zip(ms, dense_ms))
        cell = {k: run[k] for k in ("model", "budget", "method")} | {
            "measured_ms": statistics.median(ms), "dense_ms_same_time": statistics.median(dense_ms),
            "ratio_to_dense": ratio, "over_budget_same_time": ratio / run["budget"],
            "over_budget_at_cell_end": run.get("measured_over_budget"), "rounds": args.rounds}
        cells.append(cell)
        print(f"{run['model']} {run['method']:9s} @ {run['budget']}: {cell['measured_ms']:.4f} ms vs dense "
              f"{cell['dense_ms_same_time']:.4f} ms measured alternately -> {cell['over_budget_same_time']:.3f} x "
              f"budget (at the cell's end: {run.get('measured_over_budget', float('nan')):.3f} x)", flush=True)
    out = RESULTS / f"compression_quality-{args.mode}-remeasured.json"
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"device": "local CPU, onnxruntime 1 thread, dense and compressed alternately",
                               "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                               "load_average": os.getloadavg(), "cells": cells}, indent=1))
    os.replace(tmp, out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
