"""``edgeprune models``: the cost models edgeprune can find, with their device, runtime, input shape and accuracy."""
from __future__ import annotations

from rich.table import Table

from edgeprune.cli.common import JsonOpt
from edgeprune.cli.output import Output
from edgeprune.costmodel.store import list_models
from edgeprune.paths import models_search_path


def models_command(as_json: bool = JsonOpt):
    """List the fitted cost models (yours, then the shipped read-only ones) and their held-out accuracy."""
    o = Output(as_json)
    rows = list_models()
    folders = [str(f) for f in models_search_path()]
    o.emit({"search_path": folders, "models": rows})
    if not rows:
        o.print(f"no cost models in {', '.join(folders)}; make one with `edgeprune calibrate` then `edgeprune fit`")
        return
    t = Table("model", "input shape", "device", "runtime", "metric", "held-out ±10 %", "median |err|", "file",
              title="cost models")
    for r in rows:
        shape = "×".join(map(str, r["input_shape"])) if r["input_shape"] else "any"
        held, within, median = r["heldout"], "-", "-"
        if held:
            within, median = f"{held['within_10']:.0%} of {held['n']}", f"{held['median_ape']:.1%}"
        elif r.get("cv_mean_abs_error") is not None:
            median = f"{r['cv_mean_abs_error']:.1%} (cv)"
        t.add_row(r["model"] or "?", shape, r["device"] or "?", f"{r['runtime']} t{r['threads']}",
                  f"{r['metric']} ({r['unit']})", within, median,
                  r["file"] + (" (shipped, read-only)" if r["read_only"] else ""))
    o.print(t)
