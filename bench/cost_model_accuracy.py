"""Benchmark: held-out accuracy of the cost model predictors on whole networks measured on the local device.

Usage: python bench/cost_model_accuracy.py [--models resnet20,resnet56] [--variants 200] [--points 64]
       [--threads 1] [--passes 3] [--table PATH (default: the data folder's local.sqlite)]
Calibrates (resumable: measured points are reused), fits per model with every third non-dense variant held out,
saves the fitted models to energy_models/, prints a table and writes bench/results/cost_model_accuracy[-tN].json.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


from edgeprune.costmodel.dataset import Selection, network_samples
from edgeprune.costmodel.fit import fit_from_table
from edgeprune.costmodel.store import default_model_path
from edgeprune.costmodel.metrics import accuracy_report
from edgeprune.costmodel.platform import PlatformCostModel
from edgeprune.costmodel.platform_data import network_features
from edgeprune.models.layer_space import architecture_hash, build_layer_space
from edgeprune.paths import tables_dir
from edgeprune.measure.calibrate import calibrate
from edgeprune.measure.devices import LocalDevice
from edgeprune.measure.settings import MeasureSettings
from edgeprune.models import build_model
from edgeprune.tables.store import LatencyTable

RESULTS = Path(__file__).parent / "results"
PREDICTORS = ("bilinear_layers", "bilinear_network", "bilinear_both", "flops")
TARGETS = {"within_10": 0.95, "within_5": 0.80, "spearman": 0.98}


def aligned(widths: dict[str, int]) -> bool:
    return all(w % 8 == 0 for w in widths.values())


def by_alignment(rows: list[dict]) -> dict:
    """Held-out accuracy of each predictor on variants on and off multiples of 8."""
    out = {}
    for label, keep in (("on_multiples_of_8", True), ("off_multiples_of_8", False)):
        sub = [r for r in rows if aligned(r["widths"]) == keep]
        if len(sub) >= 3:
            out[label] = {p: accuracy_report([r["measured"] for r in sub], [r[p] for r in sub])
                          for p in PREDICTORS if p in sub[0]}
    return out


def check_targets(h: dict, noise_cv: float | None) -> dict:
    met = {k: h[k] >= v for k, v in TARGETS.items()}
    met["median_ape_le_2x_noise_cv"] = None if noise_cv is None else h["median_ape"] <= 2 * noise_cv
    return met


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="resnet20,resnet56")
    ap.add_argument("--variants", type=int, default=200)
    ap.add_argument("--points", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--passes", type=int, default=3, help="sweeps over the network variants; the median is used")
    ap.add_argument("--table", default=None, help="default: local.sqlite in the data folder's tables")
    args = ap.parse_args()
    args.table = args.table or str(tables_dir() / "local.sqlite")
    device = LocalDevice(sensor="auto")
    settings = MeasureSettings(threads=args.threads)
    results = {"device": None, "threads": args.threads, "models": {}}
    spaces, fits = {}, {}
    for name in args.models.split(","):
        model, shape = build_model(name)
        space = build_layer_space(model, shape)
        t0 = time.perf_counter()
        with LatencyTable(args.table) as table:
            cal = calibrate(device, name, model, space, table, settings=settings, points=args.points,
                            network_variants=args.variants, network_passes=args.passes)
            fit = fit_from_table(table, "local", name, space, Selection(cal.fingerprint_id, threads=args.threads),
                                 "latency", "auto")
        spaces[name], fits[name] = space, fit
        path = fit.model.save(default_model_path("local", name, "onnxruntime", args.threads, "latency", shape),
                              fit.provenance)
        r = fit.report
        candidates = {p: h for p, h in r["heldout"].items() if p.startswith("bilinear") and "error" not in h}
        best = max(candidates, key=lambda p: (candidates[p]["within_5"], -candidates[p]["median_ape"]))
        results["device"] = {"fingerprint_id": cal.fingerprint_id, "runtime": cal.runtime,
                             "runtime_version": cal.runtime_version, "energy_source": cal.energy_source}
        results["models"][name] = {"network_passes": args.passes,
            "calibration": cal.to_dict(), "calibration_wall_s": round(time.perf_counter() - t0, 1),
            "noise_cv": r["noise_cv"], "dense_repeats": r["dense_repeats"], "heldout": r["heldout"],
            "by_alignment": by_alignment(fit.heldout_rows), "feature_spec": r["feature_spec"],
            "spec_selection": r["spec_selection"], "best_bilinear": best,
            "targets_met": check_targets(r["heldout"][best], r["noise_cv"]), "cost_model": str(path)}
        _print(name, results["models"][name])
    if len(spaces) >= 2:
        results["platform_model"] = platform_cross_check(args.table, spaces, fits, results, args.threads)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"cost_model_accuracy{'' if args.threads == 1 else f'-t{args.threads}'}.json"
    out.write_text(json.dumps(results, indent=1, default=float))
    print(f"wrote {out}")


def platform_cross_check(table_path, spaces, fits, results, threads) -> dict:
    """Fit the platform model (graph features of each variant) on every other architecture and predict each one's
    held-out variants. bench/platform_model.py is the full cross-architecture benchmark."""
    sel = Selection(results["device"]["fingerprint_id"], threads=threads)
    with LatencyTable(table_path) as table:
        data = {n: network_samples(table, sel, architecture_hash(s), "latency") for n, s in spaces.items()}

    def feats(name, widths):
        return network_features(name, {}, widths, spaces[name].input_shape, "onnxruntime")

    out = {}
    for target in spaces:
        train = [(feats(n, w), c) for n, (ws, ys) in data.items() if n != target for w, c in zip(ws, ys)]
        model = PlatformCostModel().fit([f for f, _ in train], [c for _, c in train])
        rows = fits[target].heldout_rows
        pred = model.predict([feats(target, r["widths"]) for r in rows])
        out[target] = {"trained_on": sorted(n for n in spaces if n != target), "n_train": len(train),
                       "heldout": accuracy_report([r["measured"] for r in rows], pred)}
        h = out[target]["heldout"]
        print(f"platform model, never saw {target}: ±5% {h['within_5']:.0%} ±10% {h['within_10']:.0%} "
              f"rho {h['spearman']:.3f} median err {h['median_ape']:.2%}")
    return out


def _print(name: str, m: dict) -> None:
    noise = "n/a" if m["noise_cv"] is None else f"{m['noise_cv']:.2%}"
    print(f"\n{name}: held-out whole-network latency, local CPU (onnxruntime, measured), noise CV {noise} "
          f"over {m['dense_repeats']} dense repeats; features {m['feature_spec']}")
    print(f"{'predictor':18s} {'n':>4s} {'±5%':>6s} {'±10%':>6s} {'rho':>6s} {'med err':>8s}")
    for p, h in m["heldout"].items():
        if "error" not in h:
            print(f"{p:18s} {h['n']:4d} {h['within_5']:6.0%} {h['within_10']:6.0%} {h['spearman']:6.3f} "
                  f"{h['median_ape']:8.2%}")
    for label, preds in m["by_alignment"].items():
        print(f"  {label}: " + ", ".join(f"{p} med {h['median_ape']:.1%} ±5% {h['within_5']:.0%}"
                                         for p, h in preds.items()))
    print(f"best bilinear: {m['best_bilinear']}; targets: {m['targets_met']}")


if __name__ == "__main__":
    main()
