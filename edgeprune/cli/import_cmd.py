"""``edgeprune import``: measurements made elsewhere (CSV, TFLite benchmark_model logs) into a latency table."""
from __future__ import annotations

from pathlib import Path

import typer

from edgeprune.cli.common import JsonOpt
from edgeprune.cli.output import Output
from edgeprune.measure.importing import ImportError_, describe, parse_benchmark_log, parse_csv, store_rows
from edgeprune.paths import default_table
from edgeprune.tables.store import LatencyTable


def import_command(
    files: list[Path] = typer.Argument(..., help="Measurement CSVs or TFLite benchmark_model logs."),
    device: str = typer.Option(None, "--device", "-d", help="Device the benchmark_model logs came from "
                               "(CSV rows name their own)."),
    source: str = typer.Option(None, "--source", help="Where the benchmark_model logs came from."),
    models_dir: Path = typer.Option(None, "--models-dir", help="Folder with the .tflite files the logs ran "
                                    "(default: the log's folder)."),
    table: Path = typer.Option(None, help="SQLite table (default: <data folder>/latency_tables/<device>.sqlite, "
                               "the first CSV "
                               "row's device)."),
    as_json: bool = JsonOpt,
):
    """Import measurements made elsewhere with provenance 'imported': all rows or none.

    CSV columns: model (zoo name, path/to/file.py:fn, or an .onnx/.tflite file; paths relative to the CSV), kwargs
    (JSON, optional), input_shape (e.g. 1,3,32,32; optional for zoo and .tflite models), latency_ms and/or
    energy_mj, device, runtime (onnxruntime or litert), threads, source (where the numbers came from).
    """
    o = Output(as_json)
    rows, errors = [], []
    for path in files:
        if not path.is_file():
            errors.append(f"{path}: no such file")
        elif path.suffix.lower() == ".csv":
            got, bad = parse_csv(path)
            rows += got
            errors += bad
        else:
            if not device or not source:
                raise ValueError(f"{path.name} is a benchmark_model log: give --device and --source")
            try:
                rows.append(parse_benchmark_log(path, device, source, models_dir))
            except ValueError as exc:
                errors.append(str(exc))
    if errors:
        shown = "\n  ".join(errors[:20]) + (f"\n  … and {len(errors) - 20} more" if len(errors) > 20 else "")
        raise ImportError_(f"nothing imported; {len(errors)} problem(s):\n  {shown}")
    path = table or default_table(rows[0].device)
    with LatencyTable(path) as tbl:
        added = store_rows(tbl, rows, ", ".join(str(f) for f in files))
    summary = {"table": str(path), "added": added, "already_there": len(rows) - added, **describe(rows)}
    o.emit(summary)
    o.print(f"imported {added} measurement(s) into {path} with provenance 'imported' "
            f"({len(rows) - added} already there); fit with `edgeprune fit --platform --device DEVICE`")
