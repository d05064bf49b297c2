"""Measure random networks of four families on the local CPU for the platform-model benchmark; resumable.

Usage: python bench/platform_measure.py [--count 1100] [--passes 3] [--out bench/results/platform_networks.jsonl]
Each finished network is appended to the JSONL at once (spec, graph features, every pass), so a killed run
resumes where it stopped. Every 50 networks the dense ResNet-20 is measured again as a run-to-run noise probe.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

from edgeprune.measure.graph_features import FEATURES_VERSION, graph_digest, onnx_features
from edgeprune.measure.devices import LocalDevice
from edgeprune.formats import to_onnx_bytes
from edgeprune.measure.platform_plan import NetworkSpec, build_network, plan_networks, plan_ops
from edgeprune.measure.settings import MeasureSettings

OUT = Path(__file__).parent / "results" / "platform_networks.jsonl"
SETTINGS = MeasureSettings(threads=1, warmup=5, min_repeats=10, min_duration_s=0.1)
PROBE = NetworkSpec("probe", "resnet20")
PROBE_EVERY = 50
OPS_INDEX = 100_000  # op micro-benchmarks are indexed from here


def done_keys(path: Path) -> set[str]:
    """Keys of networks already in the JSONL (a torn last line from a killed run is ignored)."""
    keys = set()
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            keys.add(f"{rec['index']}|{rec['spec']['family']}")
    return keys


def measure_network(device: LocalDevice, spec: NetworkSpec, passes: int) -> dict:
    """Export, read the runtime's graph features, and time ``passes`` short passes."""
    t0 = time.perf_counter()
    net, shape = build_network(spec)
    data = to_onnx_bytes(net, shape)
    feats = onnx_features(data)
    runs = [device.measure(data, "onnxruntime", SETTINGS) for _ in range(passes)]
    medians = [r.latency.median for r in runs]
    return {"spec": spec.to_dict(), "digest": graph_digest(data), "features": feats,
            "features_version": FEATURES_VERSION,
            "latency_ms": statistics.median(medians), "passes_ms": medians,
            "passes_min_ms": [r.latency.min for r in runs], "loadavg_1m": os.getloadavg()[0],
            "pass_cv": statistics.pstdev(medians) / statistics.mean(medians),
            "reference_ms": [r.reference_ms for r in runs],
            "runtime_version": runs[0].runtime_version, "fingerprint_id": runs[0].fingerprint_id,
            "settings": SETTINGS.as_kwargs(), "finished_at": runs[-1].result["finished_at"],
            "wall_s": time.perf_counter() - t0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=1100)
    ap.add_argument("--passes", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--ops", type=int, default=0, help="instead: this many single-op micro-benchmarks per op kind")
    args = ap.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    device = LocalDevice(sensor="none")
    done = done_keys(args.out)
    plan = plan_ops(args.ops, args.seed) if args.ops else plan_networks(args.count, args.seed)
    offset = OPS_INDEX if args.ops else 0
    todo = [(i + offset, s) for i, s in enumerate(plan) if f"{i + offset}|{s.family}" not in done]
    print(f"{len(plan) - len(todo)} of {len(plan)} networks already measured; {len(todo)} to go", flush=True)
    started = time.perf_counter()
    for n, (i, spec) in enumerate(todo):
        rec = {"index": i, **measure_network(device, spec, args.passes)}
        records = [rec] + ([{"index": i, **measure_network(device, PROBE, args.passes)}]
                           if i % PROBE_EVERY == 0 and not args.ops else [])
        with args.out.open("a") as f:
            f.writelines(json.dumps(r, sort_keys=True) + "\n" for r in records)
        if n % 10 == 0:
            rate = (time.perf_counter() - started) / (n + 1)
            print(f"[{n + 1}/{len(todo)}] {spec.family} {rec['latency_ms']:.3f} ms (pass CV {rec['pass_cv']:.1%}); "
                  f"{rate:.1f} s/network", flush=True)


if __name__ == "__main__":
    main()
