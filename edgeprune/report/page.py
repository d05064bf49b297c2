"""One self-contained HTML page of a compress run: tables with every number's source and inlined PNG plots."""
from __future__ import annotations

import base64
import html
from pathlib import Path

from edgeprune.files import atomic_write
from edgeprune.report import plots
from edgeprune.report.run import Run, load_run

STYLE = """body{font-family:system-ui,sans-serif;max-width:980px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.6em 0}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left}
th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums}
.note{background:#fff8e1;border-left:4px solid #f0b400;padding:.4em .8em}.warn{color:#a15c00}
img{max-width:100%;border:1px solid #eee}code{background:#f3f3f3;padding:0 .2em}"""


def _e(value) -> str:
    return html.escape(str(value))


def _num(value, unit: str = "") -> str:
    if value is None:
        return "—"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.4g}{' ' + unit if unit else ''}"


def _table(head: list[str], rows: list[list], numeric=()) -> str:
    """``rows`` are plain values, escaped here; columns in ``numeric`` are right-aligned."""
    th = "".join(f"<th>{_e(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td{' class=num' if i in numeric else ''}>{_e(c)}</td>"
                                    for i, c in enumerate(r)) + "</tr>" for r in rows)
    return f"<table><tr>{th}</tr>{body}</table>"


def _img(png: bytes, alt: str) -> str:
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def _note(text: str) -> str:
    return f'<p class="note">{_e(text)}</p>'


def _predicted_source(run: Run) -> str:
    s, meta = run.summary, run.cost_model
    if meta is None:
        return f"prediction: cost model {s['predicted_by']}"
    rt = meta.get("runtime") or {}
    dev = meta.get("device") or {}
    return (f"prediction: cost model {Path(s['predicted_by']).name} (from {meta.get('source', '?')}), fitted "
            f"{meta.get('fitted_at', '?')} on {dev.get('name', '?')} ({dev.get('cpu_model') or 'CPU unknown'}), "
            f"{rt.get('name', '?')} {', '.join(rt.get('versions') or [])}, {rt.get('threads', '?')} thread(s)")


def dense_vs_compressed(run: Run) -> str:
    """The comparison table: every number with where it came from."""
    s = run.summary
    u, m, d, c = s["unit"], s.get("measurements") or {}, s["dense"], s["compressed"]
    rows = [["accuracy", f"{d['accuracy']:.2%}", f"{c['accuracy']:.2%} ({100 * s['accuracy_change']:+.1f} pt)",
             s.get("accuracy_split", "validation split")],
            ["parameters", _num(d["params"]), _num(c["params"]), "counted from the model"],
            ["MACs", _num(d["macs"]), _num(c["macs"]), "counted from the layer widths"],
            [f"predicted {s['metric']}", _num(d["predicted_cost"], u), _num(s["predicted_cost"], u),
             _predicted_source(run)],
            [f"measured {s['metric']}", _num(d["measured_cost"], u), _num(s["measured_cost"], u),
             f"dense: {m.get('dense', {}).get('source', '?')}; compressed: {s['cost_source']}"]]
    if s.get("measured_cost_drift_corrected"):
        rows.append([f"measured {s['metric']}, drift-corrected", _num(m["dense"].get("drift_corrected"), u),
                     _num(s["measured_cost_drift_corrected"], u), "the device's reference-workload ratio × the "
                     "table's typical reference time (what the prediction is comparable with)"])
    if "dense" in m and "compressed" in m:
        if s["metric"] != "latency":
            rows.append(["measured latency", _num(m["dense"]["latency_ms"], "ms"),
                         _num(m["compressed"]["latency_ms"], "ms"), f"{s['device']} timer (median, measured)"])
        if s["metric"] != "energy" and m["compressed"].get("energy_mj") is not None:
            rows.append(["energy per inference", _num(m["dense"]["energy_mj"], "mJ"),
                         _num(m["compressed"]["energy_mj"], "mJ"), m["compressed"].get("energy_source") or "?"])
    if run.verify is not None:
        v, p = run.verify, run.verify["provenance"]
        rows.append([f"verify: measured {v['metric']}", "", _num(v["measured"], v["unit"]),
                     f"{p['device']}, {p['runtime']} {p.get('runtime_version') or ''}, "
                     f"{p.get('sensor') or p.get('source')} ({v['artifact']})"])
    return _table(["", "dense", "compressed", "source"], rows, numeric=(1, 2))


def closed_loop(s: dict) -> str:
    """One row per closed-loop measurement, and why the loop stopped."""
    u = s["unit"]
    rows = [[r["round"], _num(r["target_predicted"], u), _num(r["predicted"], u), _num(r["measured"], u),
             f"{r['measured_over_budget']:.3f}"] for r in s["closed_loop"]["rounds"]]
    return (_table(["round", "target (predicted)", "predicted", "measured", "measured ÷ budget"], rows,
                   numeric=(1, 2, 3, 4))
            + f"<p>Measured by {_e(s['cost_source'])}. Stopped: {_e(s['closed_loop'].get('stopped') or '?')}.</p>")


def heldout_section(run: Run) -> str:
    """Predicted vs measured on the cost model's held-out variants."""
    parts = []
    fit = (run.cost_model or {}).get("fit") or {}
    summary = fit.get("heldout") or {}
    if summary:
        rows = [[name, h.get("n"), _pct(h.get("within_5")), _pct(h.get("within_10")), _num(h.get("spearman")),
                 _pct(h.get("median_ape"))] if "error" not in h else [name, "—", "—", "—", "—", h["error"]]
                for name, h in summary.items()]
        parts.append(_table(["predictor", "n", "within ±5 %", "within ±10 %", "Spearman", "median error"], rows,
                            numeric=(1, 2, 3, 4, 5)))
    if run.cost_model_note:
        parts.append(_note(run.cost_model_note))
    else:
        parts.append(_img(plots.heldout(run.cost_model, run.summary), "predicted vs measured, held-out variants"))
    return "".join(parts)


def _pct(v) -> str:
    return "—" if v is None else f"{v:.0%}"


def per_layer_section(run: Run) -> str:
    """Per-layer measured vs predicted from a verify result, or why there is none."""
    if run.verify is None:
        return _note(run.verify_note)
    v = run.verify
    if not v.get("layers"):
        return _note(f"{v['artifact']} was verified, but without a per-layer profile (only onnxruntime artifacts on "
                     "a device with the profiler give one)")
    rows = [[r["layer"], _num(r["measured_ms"]), _num(r["predicted"])] for r in v["layers"]]
    stale = _note(run.verify_note) if run.verify_note else ""
    return (stale + _img(plots.per_layer(v), "per-layer measured vs predicted")
            + _table(["layer", "measured ms (onnxruntime profiler)", f"predicted {v['unit']} (cost model)"], rows,
                     numeric=(1, 2)))


def render(run: Run) -> str:
    """The whole page as one HTML string."""
    s = run.summary
    title = f"{s['model']} — {s['method']} at budget {s['budget']} on {s['device']}"
    warnings = "".join(f'<li class="warn">{_e(w)}</li>' for w in s.get("warnings", []))
    verdict = "within" if s["measured_cost"] <= s["budget_abs"] else "OVER"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title><style>{STYLE}</style></head><body>
<h1>{_e(title)}</h1>
<p>Run directory <code>{_e(run.path)}</code>. Budget {_e(s['budget'])} = {_e(_num(s['budget_abs'], s['unit']))}
{_e(s['metric'])}; the final measurement is <b>{verdict}</b> the budget
({_e(f"{s['measured_cost'] / s['budget_abs']:.3f}")} × budget).</p>
{f'<ul>{warnings}</ul>' if warnings else ''}
<h2>Dense vs compressed</h2>{dense_vs_compressed(run)}
<h2>Accuracy vs measured cost</h2>{_img(plots.accuracy_vs_cost(s), "accuracy vs measured cost")}
{closed_loop(s)}
<h2>Cost model: predicted vs measured</h2>{heldout_section(run)}
<h2>Per layer: measured vs predicted</h2>{per_layer_section(run)}
</body></html>
"""


def write_report(run_dir: str | Path, out: str | Path | None = None, verify: str | Path | None = None) -> Path:
    """Render RUN_DIR's report to ``out`` (default RUN_DIR/report.html), written atomically."""
    run = load_run(run_dir, verify)
    return atomic_write(Path(out) if out else run.path / "report.html", render(run), durable=False)
