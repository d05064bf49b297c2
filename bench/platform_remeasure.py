"""Re-measure networks of the platform benchmark on a quieter CPU; resumable, in short chunks.

Usage: python bench/platform_remeasure.py [--indices 12,40,...] [--limit 100] [--passes 3]
                                          [--again-above 0.05 --round 2]
Without --indices it works through every network of bench/results/platform_networks.jsonl, the least consistent
first (pass CV descending; model-independent). --again-above CV --round R instead measures once more every network
whose re-measured passes (pooled over its rounds, drift-corrected) still disagree by more than CV and that has fewer
than R rounds; the benchmark pools the passes of all rounds. Each network is rebuilt from its spec, checked to
export the same graph (same features; width variants' weights are random, so not the digest), timed exactly like
bench/platform_measure.py and appended to platform_remeasured.jsonl, so a chunk can stop anywhere; the dense
ResNet-20 probe is re-measured at the start of every chunk.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from platform_measure import OUT, PROBE, done_keys, measure_network

from edgeprune.measure.devices import LocalDevice
from edgeprune.measure.platform_plan import NetworkSpec

REMEASURED = OUT.with_name("platform_remeasured.jsonl")


def read_jsonl(path: Path) -> list[dict]:
    """Every record of a measurement JSONL, a torn last line skipped."""
    recs = []
    for line in path.read_text().splitlines():
        try:
            recs.append(json.loads(line))
        except ValueError:
            continue
    return recs


def originals(path: Path) -> list[dict]:
    """The records of a measurement JSONL but the probes."""
    return [r for r in read_jsonl(path) if r["spec"]["family"] != "probe"]


def key(rec: dict) -> str:
    return f"{rec['index']}|{rec['spec']['family']}"


def corrected_cv(passes_ms: list[float], reference_ms: list[float]) -> float:
    """Pass-to-pass CV of the model's time over the interleaved reference's (machine-wide drift cancelled)."""
    ratios = np.array(passes_ms) / np.array(reference_ms)
    return float(ratios.std() / ratios.mean())


def pooled(recs: list[dict]) -> dict[str, dict]:
    """Per network, its measurement rounds pooled: passes and references concatenated, ``rounds`` counted."""
    out: dict[str, dict] = {}
    for r in recs:
        prev = out.get(key(r))
        if prev is None:
            out[key(r)] = {**r, "rounds": 1}
        else:
            out[key(r)] = {**r, "passes_ms": prev["passes_ms"] + r["passes_ms"], "rounds": prev["rounds"] + 1,
                           "reference_ms": prev["reference_ms"] + r["reference_ms"]}
    return out


def plan(args) -> list[dict]:
    """The original records to measure (again) in this chunk."""
    recs = originals(args.source)
    if args.again_above is not None:
        have = pooled(originals(args.out)) if args.out.is_file() else {}
        cv = {k: corrected_cv(r["passes_ms"], r["reference_ms"]) for k, r in have.items()}
        todo = [r for r in recs if cv.get(key(r), 0.0) > args.again_above and have[key(r)]["rounds"] < args.round]
        return sorted(todo, key=lambda r: (-cv[key(r)], r["index"]))[:args.limit]
    if args.indices:
        by_index = {r["index"]: r for r in recs}
        recs = [by_index[int(i)] for i in args.indices.split(",")]
    else:
        recs.sort(key=lambda r: (-r["pass_cv"], r["index"]))
    done = done_keys(args.out)
    return [r for r in recs if key(r) not in done][:args.limit]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--indices", default="", help="comma-separated indices (default: every network, noisiest first)")
    ap.add_argument("--limit", type=int, default=100, help="networks in this chunk")
    ap.add_argument("--passes", type=int, default=3)
    ap.add_argument("--source", type=Path, default=OUT)
    ap.add_argument("--out", type=Path, default=REMEASURED)
    ap.add_argument("--again-above", type=float, default=None,
                    help="measure once more the networks whose pooled drift-corrected pass CV exceeds this")
    ap.add_argument("--round", type=int, default=2, help="with --again-above: up to this many rounds per network")
    args = ap.parse_args()
    todo = plan(args)
    print(f"{len(todo)} to re-measure in this chunk", flush=True)
    if not todo:
        return
    device = LocalDevice(sensor="none")
    started = time.perf_counter()
    with args.out.open("a") as f:
        probe = {"index": -1, **measure_network(device, PROBE, args.passes)}
        f.write(json.dumps(probe, sort_keys=True) + "\n")
        for n, old in enumerate(todo):
            rec = {"index": old["index"], **measure_network(device, NetworkSpec.from_dict(old["spec"]), args.passes)}
            if old.get("features_version") == rec["features_version"] and old["features"] != rec["features"]:
                raise SystemExit(f"network {old['index']} exports a different graph than when it was measured "
                                 f"(torch or the builder changed): not comparable")
            rec["original_ms"], rec["original_passes_ms"] = old["latency_ms"], old["passes_ms"]
            f.write(json.dumps(rec, sort_keys=True) + "\n")
            f.flush()
            if n % 10 == 0:
                print(f"[{n + 1}/{len(todo)}] {old['spec']['family']} {old['latency_ms']:.3f} -> "
                      f"{rec['latency_ms']:.3f} ms; {(time.perf_counter() - started) / (n + 1):.1f} s/network",
                      flush=True)


if __name__ == "__main__":
    main()
