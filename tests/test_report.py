"""`edgeprune report` on a real compress run of the demo CNN, rendered in headless Debian chromium."""
import json
import shutil

import pytest
import torch

from chromium_cdp import IMAGE_PIXELS_JS, Chromium
from typer.testing import CliRunner

from edgeprune.cli.main import app

FAST = {"warmup": 1, "min_repeats": 3, "min_duration_s": 0.01}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A real run: demo CNN trained briefly, this CPU calibrated (fast settings), fitted, compressed, verified."""
    from edgeprune.pipeline import CompressConfig, compress
    from edgeprune.costmodel.dataset import Selection
    from edgeprune.costmodel.fit import fit_from_table
    from edgeprune.costmodel.store import default_model_path
    from edgeprune.data import load_data
    from edgeprune.measure.calibrate import calibrate
    from edgeprune.measure.registry import open_device
    from edgeprune.measure.settings import MeasureSettings
    from edgeprune.models import build_model
    from edgeprune.models.layer_space import build_layer_space
    from edgeprune.prune.closed_loop import LoopSettings
    from edgeprune.tables.store import LatencyTable
    from edgeprune.train import train_from_scratch
    from edgeprune.verify import verify

    tmp = tmp_path_factory.mktemp("report")
    with pytest.MonkeyPatch.context() as mp:
        for k in ("CACHE", "CONFIG", "TABLES", "MODELS"):
            mp.setenv(f"EDGEPRUNE_{k}_DIR", str(tmp / k.lower()))
        torch.manual_seed(0)
        net, shape = build_model("demo_cnn")
        train_from_scratch(net, load_data("digits", limit=600), 2)
        torch.save(net.state_dict(), tmp / "dense.pt")
        space = build_layer_space(net, shape)
        with LatencyTable(tmp / "tables" / "local.sqlite") as table:
            cal = calibrate(open_device("local"), "demo_cnn", net, space, table, settings=MeasureSettings(**FAST),
                            points=8, network_variants=10)
            fit = fit_from_table(table, "local", "demo_cnn", space, Selection(cal.fingerprint_id, "onnxruntime", 1))
        fit.model.save(default_model_path("local", "demo_cnn", "onnxruntime", 1, "latency", shape), fit.provenance)
        out = tmp / "run"
        compress(CompressConfig(model="demo_cnn", weights=str(tmp / "dense.pt"), budget="0.75", method="uniform",
                                epochs=1, data_limit=600, out=str(out), closed_loop=LoopSettings(rounds=1)))
        result = verify("local", out / "model.onnx", "0.75", settings=MeasureSettings(**FAST))
        (out / "verify.json").write_text(json.dumps(result))
    return out


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    chromium = Chromium(tmp_path_factory.mktemp("chromium-profile"))
    yield chromium
    chromium.close()


def _page_images(browser, page) -> list[dict]:
    errors = browser.load(page.as_uri())
    assert errors == [], f"console errors: {errors}"
    return browser.evaluate(IMAGE_PIXELS_JS)


def test_report_renders_in_chromium_without_errors_and_draws_every_plot(run_dir, browser, tmp_path):
    page = tmp_path / "page.html"
    done = CliRunner().invoke(app, ["report", str(run_dir), "--out", str(page), "--json"])
    assert done.exit_code == 0 and json.loads(done.stdout) == {"report": str(page)}
    html = page.read_text()
    assert "src=\"http" not in html and "src=\"file" not in html  # self-contained: every plot inlined
    images = _page_images(browser, page)
    assert [i["alt"] for i in images] == ["accuracy vs measured cost", "predicted vs measured, held-out variants",
                                          "per-layer measured vs predicted"]
    for img in images:
        assert img["complete"] and img["width"] > 300 and img["height"] > 200, img
        assert img["blue"] > 100, f"{img['alt']}: no data drawn (only {img['blue']} data-coloured pixels)"
    assert images[0]["red"] > 100  # the budget line
    summary = json.loads((run_dir / "summary.json").read_text())
    text = browser.evaluate("document.body.innerText")
    assert summary["cost_source"] in text and "estimate" in text  # every number with its source
    assert "onnxruntime" in text and f"{summary['budget_abs']:.4g}" in text
    for r in summary["closed_loop"]["rounds"]:
        assert f"{r['measured']:.4g}" in text


def test_blank_plot_is_caught(browser, tmp_path):
    """The pixel check fails on an image with axes but no data, so it can tell a blank plot."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from edgeprune.report.page import _img

    fig = Figure(figsize=(6, 4))
    FigureCanvasAgg(fig)
    fig.subplots()
    buf = __import__("io").BytesIO()
    fig.savefig(buf, format="png")
    page = tmp_path / "blank.html"
    page.write_text(f"<!DOCTYPE html><html><body>{_img(buf.getvalue(), 'empty axes')}</body></html>")
    [img] = _page_images(browser, page)
    assert img["complete"] and img["ink"] > 0 and img["blue"] < 100
    page.write_text("<!DOCTYPE html><html><body><script>missing()</script></body></html>")
    assert any("missing" in e for e in browser.load(page.as_uri()))


def test_report_without_verify_says_so(run_dir, tmp_path):
    from edgeprune.report import load_run, render

    bare = tmp_path / "run"
    shutil.copytree(run_dir, bare, ignore=shutil.ignore_patterns("verify.json", "*.pt", "*.onnx"))
    html = render(load_run(bare))
    assert "no verify result" in html and "edgeprune verify" in html
    assert html.count("<img ") == 2


def test_report_of_a_directory_that_is_no_run_is_one_line(tmp_path):
    done = CliRunner().invoke(app, ["report", str(tmp_path)])
    assert done.exit_code == 1 and "summary.json not found" in " ".join(done.stderr.split())
    assert "Traceback" not in done.stderr and not (tmp_path / "report.html").exists()


def test_report_flags_a_verify_result_older_than_the_model(run_dir):
    import os

    from edgeprune.report import load_run

    assert load_run(run_dir).verify_note is None
    model = run_dir / "model.onnx"
    before = model.stat()
    later = (run_dir / "verify.json").stat().st_mtime + 10
    os.utime(model, (later, later))
    try:
        assert "may be of an older model" in load_run(run_dir).verify_note
    finally:
        os.utime(model, ns=(before.st_atime_ns, before.st_mtime_ns))


def test_a_saved_python_api_result_is_a_run_dir(run_dir, tmp_path):
    from edgeprune import CompressResult
    from edgeprune.report import load_run, render

    summary = json.loads((run_dir / "summary.json").read_text())
    result = CompressResult(None, summary["compressed"]["widths"], summary["predicted_cost"], summary["measured_cost"],
                            summary["compressed"]["accuracy"], summary, run_dir)
    saved = load_run(result.save(tmp_path / "saved"))
    assert saved.summary == summary and saved.verify is None
    assert render(saved).count("<img ") == 2
