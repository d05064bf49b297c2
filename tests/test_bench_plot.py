"""bench/compression_quality.py's plot on a synthetic results state (the benchmark itself takes hours)."""
import importlib
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench"


def _run(model, budget, method, over, acc):
    """A cell; ``over`` is its latency ÷ dense measured alongside, ÷ the budget fraction."""
    return {"model": model, "budget": budget, "method": method, "measured_over_budget": over, "accuracy": acc}


def test_one_panel_per_model_with_dense_points_and_budget_lines(monkeypatch, tmp_path):
    monkeypatch.syspath_prepend(str(BENCH))
    bench = importlib.import_module("compression_quality")
    state = {"mode": "medium", "epochs": 15,
             "dense": {"resnet20": {"measured_ms": 2.0, "accuracy": 0.92},
                       "resnet56": {"measured_ms": 6.0, "accuracy": 0.94}},
             "runs": [_run("resnet20", None, "dense-ft", None, 0.925), _run("resnet20", 0.5, "ecc", 0.98, 0.91),
                      _run("resnet20", 0.3, "ecc", 1.0, 0.89), _run("resnet20", 0.5, "uniform", 1.02, 0.90),
                      _run("resnet56", 0.5, "ecc", 0.97, 0.93),
                      # a failed cell and one stopped by its method's floor, as run_cell records them: no accuracy
                      {"model": "resnet56", "budget": 0.3, "method": "halp", "error": "RuntimeError()"},
                      {"model": "resnet56", "budget": 0.2, "method": "ecc", "stopped_by_floor": "floor 0.25"}]}
    fig = bench.figure(state)
    axes = fig.get_axes()
    assert [ax.get_title().split(":")[0] for ax in axes] == ["resnet20", "resnet56"]
    for ax, model in zip(axes, ("resnet20", "resnet56")):
        labels = ax.get_legend_handles_labels()[1]
        assert "dense (pretrained)" in labels
        fracs = sorted({r["budget"] for r in state["runs"] if r["model"] == model and r["budget"] is not None
                        and "accuracy" in r})
        assert sorted(line.get_xdata()[0] for line in ax.get_lines()) == fracs  # x: latency ÷ dense
        points = {lbl: coll.get_offsets().tolist() for coll, lbl in zip(ax.collections, labels)}
        assert points["dense (pretrained)"] == [[1.0, 100 * state["dense"][model]["accuracy"]]]
    ecc = dict(zip(axes[0].get_legend_handles_labels()[1], axes[0].collections))["ecc"].get_offsets().tolist()
    assert sorted(ecc) == sorted([[0.5 * 0.98, 91.0], [0.3 * 1.0, 89.0]])
    assert "dense-ft (dense, fine-tuned alike)" in axes[0].get_legend_handles_labels()[1]
    assert axes[1].get_legend_handles_labels()[1] == ["dense (pretrained)", "ecc"]  # cells without a model are left out
    bench.plot(state, tmp_path / "plot.png")
    assert (tmp_path / "plot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
