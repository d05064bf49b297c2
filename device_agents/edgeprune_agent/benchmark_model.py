"""Parse TFLite `benchmark_model --enable_op_profiling=true` output (current and legacy [start] layouts)."""
from __future__ import annotations

import re
from typing import Any, Dict, List, Optional, Sequence, Tuple

REGULAR_RUNS = "Operator-wise Profiling Info for Regular Benchmark Runs:"
_STATS = re.compile(r"count=(\d+) first=(\d+) curr=(\d+) min=(\d+) max=(\d+) avg=([\d.]+) std=(\d+)")
_TIMINGS = re.compile(r"Inference timings in us: (.*)$")
_COLUMNS = {"node type": "node_type", "start": "start_ms", "first": "first_ms", "avg ms": "avg_ms",
            "%": "percent", "cdf%": "cdf_percent", "mem KB": "mem_kb", "times called": "times_called",
            "Name": "name"}
OP_FOR_LAYER = {"conv": ("CONV_2D", "Convolution"), "dwconv": ("DEPTHWISE_CONV_2D", "Convolution"),
                "linear": ("FULLY_CONNECTED", "Fully Connected")}


class BenchmarkOutputError(ValueError):
    """benchmark_model's output lacks what we need (failed run, or profiling switched off)."""


def _number(text: str) -> float:
    """'4.202%' -> 4.202."""
    return float(text.rstrip("%"))


def _parse_table(lines: Sequence[str], start: int) -> Tuple[List[Dict[str, Any]], str]:
    """The 'Run Order' table beginning after line `start`: rows by header names; returns (rows, layout)."""
    index = start
    while index < len(lines) and "[node type]" not in lines[index]:
        index += 1
    if index == len(lines):
        raise BenchmarkOutputError("no '[node type]' header after the per-op section title")
    header = [h.strip().strip("[]") for h in lines[index].split("\t")]
    keys = [_COLUMNS.get(h) for h in header]
    if "avg_ms" not in keys or "name" not in keys:
        raise BenchmarkOutputError(f"unexpected per-op header {header}")
    rows = []
    for line in lines[index + 1:]:
        if not line.strip():
            break
        cells = [c.strip() for c in line.split("\t")]
        row: Dict[str, Any] = {}
        for key, cell in zip(keys, cells):
            if key in ("node_type", "name"):
                row[key] = cell
            elif key == "times_called":
                row[key] = int(cell)
            elif key is not None:
                row[key] = _number(cell)
        row["index"] = len(rows)
        rows.append(row)
    return rows, "legacy (with [start])" if "start_ms" in keys else "current"


def _stats(match: "re.Match[str]") -> Dict[str, float]:
    """count/first/curr/min/max/avg/std in microseconds."""
    names = ("count", "first_us", "curr_us", "min_us", "max_us", "avg_us", "std_us")
    return {n: (int(v) if n == "count" else float(v)) for n, v in zip(names, match.groups())}


def parse_benchmark_output(text: str) -> Dict[str, Any]:
    """Per-op table of the regular runs (the initialisation table is ignored), run statistics and timings."""
    lines = text.splitlines()
    lines = [line for line in lines if not line.startswith("#")]
    stats = [(i, m) for i, line in enumerate(lines)
             if (m := _STATS.search(line)) and not line.lstrip().startswith("Timings")]
    timing_line = next((m for line in lines if (m := _TIMINGS.search(line))), None)
    if not stats or timing_line is None:
        raise BenchmarkOutputError("benchmark_model printed no timings (did it fail? last lines: "
                                   + " | ".join(lines[-3:]) + ")")
    timings = {}
    for part in timing_line.group(1).split(","):
        key, _, value = part.partition(":")
        timings[key.strip()] = float(value)
    out: Dict[str, Any] = {"run": _stats(stats[-1][1]), "timings_us": timings, "ops": [], "layout": None}
    if len(stats) > 1:
        out["warmup"] = _stats(stats[0][1])
    title = next((i for i, line in enumerate(lines) if line.rstrip().endswith(REGULAR_RUNS)), None)
    if title is not None:
        out["ops"], out["layout"] = _parse_table(lines, title + 1)
    return out


def map_ops_to_layers(ops: Sequence[Dict[str, Any]], layers: Sequence[Tuple[str, str]]) -> Dict[str, Any]:
    """Match conv/linear ops in run order to (layer name, op kind) in execution order; other ops are summed."""
    wanted = {t for kinds in OP_FOR_LAYER.values() for t in kinds}
    compute = [op for op in ops if any(op["node_type"].startswith(t) for t in wanted)]
    mapped: Dict[str, Dict[str, Any]] = {}
    problems: List[str] = []
    for (name, kind), op in zip(layers, compute):
        if not op["node_type"].startswith(OP_FOR_LAYER[kind]):
            problems.append(f"{name} ({kind}) met {op['node_type']} {op['name']}")
        mapped[name] = {"avg_ms": op["avg_ms"], "node_type": op["node_type"], "node": op["name"]}
    if len(compute) != len(layers):
        problems.append(f"{len(compute)} conv/linear ops for {len(layers)} layers")
    other = sum(op["avg_ms"] for op in ops if op not in compute)
    return {"layers": mapped, "other_ops_ms": other, "exact": not problems, "problems": problems}


def latency_from_run(run: Dict[str, float]) -> Dict[str, Optional[float]]:
    """Schema-1 latency_ms from benchmark_model's summary (it reports no percentiles: median = mean, flagged)."""
    avg, std = run["avg_us"] / 1000.0, run["std_us"] / 1000.0
    return {"median": avg, "mean": avg, "p10": None, "p90": None, "std": std, "min": run["min_us"] / 1000.0,
            "n": run["count"], "cv": std / avg if avg else None, "run_cv": None,
            "note": "benchmark_model reports mean/min/max/std only: median is the mean, p10/p90 unknown"}
