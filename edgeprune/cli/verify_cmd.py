"""``edgeprune verify``: measure an artifact on a device against the cost model's prediction and the budget."""
from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from edgeprune.cli.common import JsonOpt
from edgeprune.cli.output import OVER_BUDGET, Output


def verify_command(artifact: Path = typer.Argument(..., help="An .onnx or .tflite file."),
                   device: str = typer.Option("local", "--device", "-d"),
                   budget: str = typer.Option(None, "--budget", help="4.2mJ, 3ms, or a fraction of dense."),
                   metric: str = typer.Option("latency", "--metric", help="energy or latency."),
                   tolerance: float = typer.Option(0.03, "--tolerance", help="Allowed excess over the budget."),
                   cost_model: Path = typer.Option(None, "--cost-model", help="Cost model JSON (default: the "
                                                   "fitted one for this device and model)."),
                   as_json: bool = JsonOpt):
    """Measure an artifact end to end; exit 3 when it exceeds the budget beyond the tolerance (1 on an error)."""
    import edgeprune

    o = Output(as_json)
    o.log(f"measuring {artifact} on {device} (a few seconds; longer on a remote device's queue)")
    r = edgeprune.verify(artifact, device, budget=budget, metric=metric, tolerance=tolerance, cost_model=cost_model)
    o.emit(r)
    print_report(o, r)
    if r["within_budget"] is False:
        raise typer.Exit(OVER_BUDGET)


def print_report(o: Output, r: dict) -> None:
    """Measured vs predicted vs budget, then the per-layer breakdown."""
    u, p = r["unit"], r["provenance"]
    src = p.get("sensor") or p["source"]
    o.print(f"{r['artifact']} on {r['device']} ({p['runtime']}): measured {r['metric']} {r['measured']:.4g} {u} "
            f"({src})")
    if r["predicted"] is not None:
        against = "" if r.get("measured_drift_corrected") is None else \
            f" against {r['measured_drift_corrected']:.4g} {u} drift-corrected"
        o.print(f"predicted {r['predicted']:.4g} {u} by {r['cost_model']} ({r['prediction_error']:+.1%}{against})")
    for w in r.get("warnings", []):
        o.warn(w)
    if r["budget"] is not None:
        verdict = "within" if r["within_budget"] else "[red]OVER[/]"
        b = r.get("beside_dense")
        how = (f": {b['ratio']:.3f} × dense measured alongside (median of {b['pairs']} pairs), budget "
               f"{r['budget_given']} × dense" if b else "")
        o.print(f"{verdict} the budget {r['budget']:.4g} {u} (tolerance {r['tolerance']:.0%}){how}")
    if r["layers"]:
        t = Table("layer", "measured ms (ORT profiler)", f"predicted {u} (cost model)")
        for row in r["layers"]:
            t.add_row(row["layer"], _fmt(row["measured_ms"]), _fmt(row["predicted"]))
        o.print(t)


def _fmt(v) -> str:
    return "—" if v is None else f"{v:.4g}"
