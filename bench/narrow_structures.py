"""Benchmark: how a cost model prices the narrow structures an aggressive budget lands on, against measurement.

Usage: python bench/narrow_structures.py --cost-model PATH [--model resnet20] [--rounds 5] [--selection channels.json]
Each structure is timed alternately with the dense model (onnxruntime, 1 thread, local CPU), so machine drift
cancels in the ratio; the cost model's ratio to its own dense prediction is printed beside it. The structures: every
group at ecc/halp's floor (20 %), uniform 0.3, every group at 8 channels, every group at 1, and optionally a saved
selection. Writes bench/results/narrow_structures-MODEL.json.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

from edgeprune.costmodel.model import CostModel
from edgeprune.files import atomic_write
from edgeprune.formats import to_onnx_bytes
from edgeprune.measure.registry import open_device
from edgeprune.measure.settings import MeasureSettings
from edgeprune.measure.variants import build_variant
from edgeprune.models import build_model
from edgeprune.models.layer_space import build_layer_space
from edgeprune.structure.physical import min_widths

RESULTS = Path(__file__).parent / "results"


def structures(space, selection: Path | None) -> dict[str, dict[str, int]]:
    dense = space.dense_widths()
    out = {"floor_20pct": min_widths(space, None, 0.2),
           "uniform_0.3": {k: max(1, round(0.3 * v)) for k, v in dense.items()},
           "all_8": {k: min(8, v) for k, v in dense.items()},
           "all_1": {k: 1 for k in dense}}
    if selection is not None:
        out[f"selection:{selection.parent.parent.name}"] = json.loads(selection.read_text())["widths"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cost-model", type=Path, required=True)
    ap.add_argument("--model", default="resnet20")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--selection", type=Path, default=None, help="a compress run's selection/channels.json")
    args = ap.parse_args()
    net, shape = build_model(args.model)
    space = build_layer_space(net, shape)
    cost_model, _ = CostModel.load(args.cost_model)
    dense = space.dense_widths()
    named = structures(space, args.selection)
    onnx = {name: to_onnx_bytes(build_variant(net, space, w), shape) for name, w in named.items()}
    dense_onnx = to_onnx_bytes(build_variant(net, space, dense), shape)
    device, settings = open_device("local"), MeasureSettings(threads=1)
    ratios: dict[str, list[float]] = {name: [] for name in named}
    for _ in range(args.rounds):
        for name, model in onnx.items():
            d = device.measure(dense_onnx, "onnxruntime", settings).latency.median
            ratios[name].append(device.measure(model, "onnxruntime", settings).latency.median / d)
    predicted = cost_model.predict([dense, *named.values()])
    rows = []
    for (name, widths), p in zip(named.items(), predicted[1:]):
        measured = statistics.median(ratios[name])
        rows.append({"structure": name, "widths": widths, "measured_ratio_to_dense": measured,
                     "predicted_ratio_to_dense": float(p / predicted[0]), "rounds": ratios[name]})
        print(f"{name:28s} measured {measured:.3f} × dense   predicted {p / predicted[0]:.3f} ×", flush=True)
    out = RESULTS / f"narrow_structures-{args.model}.json"
    atomic_write(out, json.dumps({"device": "local CPU, onnxruntime 1 thread, each structure alternately with dense",
                                  "cost_model": str(args.cost_model), "measured_at": time.strftime(
                                      "%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "load_average": os.getloadavg(),
                                  "rows": rows}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
