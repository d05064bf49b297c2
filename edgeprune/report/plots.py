"""The report's figures as PNG bytes (matplotlib's Agg canvas; no pyplot state)."""
from __future__ import annotations

import io

from edgeprune.report.run import ReportError

DENSE, COMPRESSED, BUDGET, MODEL, BASELINE = "#333333", "#1f77b4", "#d62728", "#1f77b4", "#999999"


def _figure(width: float, height: float, **subplots):
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise ReportError("edgeprune report draws its plots with matplotlib: pip install matplotlib") from None
    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.subplots(**subplots)


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def accuracy_vs_cost(s: dict) -> bytes:
    """Accuracy vs measured cost (dense, compressed, before fine-tuning) over the closed loop's rounds."""
    unit, budget = s["unit"], s["budget_abs"]
    fig, (top, loop) = _figure(8, 6.2, nrows=2, sharex=True, gridspec_kw={"height_ratios": [3, 1.6]})
    dense, comp = s["dense"], s["compressed"]
    top.plot(dense["measured_cost"], dense["accuracy"], "s", color=DENSE, ms=9, label="dense")
    top.plot(s["measured_cost"], comp["accuracy"], "*", color=COMPRESSED, ms=15, label=f"compressed ({s['method']})")
    top.annotate("", (s["measured_cost"], comp["accuracy"]), (dense["measured_cost"], dense["accuracy"]),
                 arrowprops={"arrowstyle": "->", "color": BASELINE, "linestyle": "--"})
    before = (s.get("schedule") or {}).get("history") or [{}]
    acc_before, cost_before = before[-1].get("accuracy_before_fine_tune"), s["closed_loop"].get(
        "measured_before_fine_tune")
    if acc_before is not None and cost_before is not None:
        top.plot(cost_before, acc_before, "o", mfc="none", color=COMPRESSED, ms=9,
                 label="compressed, before fine-tuning")
    top.set_ylabel(f"accuracy ({s.get('accuracy_split', 'validation')})")
    top.set_title(f"{s['model']}: accuracy vs measured {s['metric']} on {s['device']}")
    rounds = s["closed_loop"]["rounds"]
    for r in rounds:
        loop.plot([r["predicted"], r["measured"]], [r["round"]] * 2, "-", color=BASELINE, lw=1)
    loop.plot([r["predicted"] for r in rounds], [r["round"] for r in rounds], "o", mfc="none", color=MODEL,
              label="predicted (cost model)")
    loop.plot([r["measured"] for r in rounds], [r["round"] for r in rounds], "o", color=MODEL,
              label="measured on the device")
    loop.set_ylim(len(rounds) - 0.5, -0.5)
    loop.set_yticks([r["round"] for r in rounds])
    loop.set_ylabel("closed-loop round")
    loop.set_title("closed loop before fine-tuning (accuracy not evaluated per round)", fontsize=9)
    loop.set_xlabel(f"{s['metric']} ({unit})")
    for ax in (top, loop):
        ax.axvline(budget, color=BUDGET, ls="--", label=f"budget {s['budget']} = {budget:.4g} {unit}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="best")
    return _png(fig)


def heldout(meta: dict, s: dict) -> bytes:
    """Predicted vs measured on the cost model's held-out variants (and the FLOPs baseline), plus this run."""
    fit, unit = meta["fit"], s["unit"]
    rows, chosen = fit["heldout_rows"], f"bilinear_{fit.get('source', meta.get('source'))}"
    fig, ax = _figure(9.5, 6)
    measured = [r["measured"] for r in rows]
    lo, hi = min(measured), max(measured)
    for name, marker, color, label in ((chosen, "o", MODEL, f"cost model ({chosen})"),
                                       ("flops", "x", BASELINE, "FLOPs-linear baseline")):
        pts = [(r["measured"], r[name]) for r in rows if r.get(name) is not None]
        if pts:
            ax.plot(*zip(*pts), marker, color=color, ls="none", label=f"{label}, {len(pts)} held-out variants")
            lo, hi = min(lo, *(p for _, p in pts)), max(hi, *(p for _, p in pts))
    m = s["measurements"]
    for key, marker, color in (("dense", "s", DENSE), ("compressed", "*", COMPRESSED)):
        x = m[key]["drift_corrected"] or m[key]["value"]
        y = s["dense"]["predicted_cost"] if key == "dense" else s["predicted_cost"]
        ax.plot(x, y, marker, color=color, ms=12, ls="none", label=f"this run: {key} (final measurement)")
        lo, hi = min(lo, x, y), max(hi, x, y)
    pad = 0.08 * (hi - lo or hi or 1)
    line = [lo - pad, hi + pad]
    ax.plot(line, line, "-", color="black", lw=0.8, label="predicted = measured")
    ax.fill_between(line, [v * 0.95 for v in line], [v * 1.05 for v in line], color=MODEL, alpha=0.12, label="±5 %")
    ax.plot(line, [v * 0.9 for v in line], ":", color=MODEL, lw=0.8, label="±10 %")
    ax.plot(line, [v * 1.1 for v in line], ":", color=MODEL, lw=0.8)
    ax.set_xlim(*line)
    ax.set_ylim(*line)
    ax.set_xlabel(f"measured {s['metric']} ({unit})" + (", drift-corrected" if meta.get("reference_ms") else ""))
    ax.set_ylabel(f"predicted {s['metric']} ({unit})")
    ax.set_title("cost model on whole-network variants it was not fitted on")
    ax.grid(alpha=0.3)
    fig.legend(fontsize=8, loc="outside right upper")
    return _png(fig)


def per_layer(v: dict) -> bytes:
    """Per-layer measured time (onnxruntime profiler) beside the cost model's per-layer prediction."""
    rows = v["layers"]
    names = [r["layer"] for r in rows]
    ys = list(range(len(rows)))
    same_unit = v["unit"] == "ms"
    fig, axes = _figure(8, 1.6 + 0.32 * len(rows), ncols=1 if same_unit else 2, sharey=True, squeeze=False)
    axes = axes[0]
    height = 0.4 if same_unit else 0.8
    meas = [(y, r["measured_ms"]) for y, r in zip(ys, rows) if r["measured_ms"] is not None]
    pred = [(y, r["predicted"]) for y, r in zip(ys, rows) if r["predicted"] is not None]
    shift = height / 2 if same_unit else 0
    axes[0].barh([y - shift for y, _ in meas], [m for _, m in meas], height, color=DENSE,
                 label="measured ms (profiler)")
    pred_ax = axes[0] if same_unit else axes[1]
    pred_ax.barh([y + shift for y, _ in pred], [p for _, p in pred], height, color=MODEL,
                 label=f"predicted {v['unit']} (cost model)")
    axes[0].set_yticks(ys, names)
    axes[0].invert_yaxis()
    for ax in axes:
        ax.grid(axis="x", alpha=0.3)
    fig.legend(fontsize=8, loc="outside lower center", ncols=2)
    axes[0].set_xlabel("ms" if same_unit else "measured ms")
    if not same_unit:
        pred_ax.set_xlabel(f"predicted {v['unit']}")
    fig.suptitle(f"per layer: {v['artifact']} on {v['device']}", fontsize=10)
    return _png(fig)
