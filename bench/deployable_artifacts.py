"""Benchmark: a compressed model as ONNX fp32 / ONNX int8 / TFLite fp32 / TFLite int8 — parity, accuracy, size,
measured latency on the local device and the cost model's prediction error.

Usage: python bench/deployable_artifacts.py MODEL_DIR [--data SOURCE] [--data-limit 2000]
(MODEL_DIR from `edgeprune compress`, e.g. bench/results/work/resnet20-0.5-ecc after compression_quality.py)
Writes bench/results/deployable_artifacts.json.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from edgeprune.export.artifact import export_artifact
from edgeprune.verify.check import verify

RESULTS = Path(__file__).parent / "results"
VARIANTS = (("onnx", False), ("onnx", True), ("tflite", False), ("tflite", True))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model_dir")
    ap.add_argument("--data-limit", type=int, default=2000)
    ap.add_argument("--data", help="data source (default: the one recorded in the model dir)")
    args = ap.parse_args()
    info = json.loads((Path(args.model_dir) / "channels.json").read_text())
    data = args.data or info["meta"].get("data")
    if data is None or (data.startswith("npz:") and not Path(data[4:]).exists()):
        print(f"skipped: data source {data!r} of {args.model_dir} is not available")
        return
    rows = []
    for fmt, int8 in VARIANTS:
        exp = export_artifact(args.model_dir, fmt, int8, data=data, data_limit=args.data_limit)
        ver = verify("local", exp["artifact"], profile=False)
        q = exp.get("quantization") or {}
        row = {"format": fmt, "int8": int8, "size_bytes": exp["size_bytes"], "parity": exp.get("parity"),
               "accuracy": q.get("int8_accuracy") if int8 else q.get("fp32_accuracy"),
               "accuracy_change_pt": None if not int8 else 100 * q.get("accuracy_change", 0.0),
               "measured_ms": ver["measured"]["value"] if isinstance(ver["measured"], dict) else ver["measured"],
               "predicted_ms": ver.get("predicted"), "prediction_error": ver.get("prediction_error"),
               "provenance": ver["provenance"]}
        rows.append(row)
        print(f"{fmt:6s} {'int8' if int8 else 'fp32'}: {row['size_bytes']:>9,} B  measured {row['measured_ms']} ms  "
              f"predicted {row['predicted_ms']}  acc {row['accuracy']}  Δacc {row['accuracy_change_pt']}", flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "deployable_artifacts.json").write_text(json.dumps({"model_dir": args.model_dir, "rows": rows},
                                                                  indent=1, default=str))


if __name__ == "__main__":
    main()
