"""The compression pipeline end to end on the demo CNN and digits, through the real CLI."""
import json
import re

import pytest
import torch

from conftest import FAST, run_cli
from edgeprune.prune.artifact import load_compressed
from edgeprune.train.distributed import pick_device


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """Shared dirs, a trained dense checkpoint and a quick cost model, which every compress finds and reuses."""
    from edgeprune.data import load_data
    from edgeprune.models import build_model
    from edgeprune.train import train_from_scratch

    tmp = tmp_path_factory.mktemp("compress")
    env = {f"EDGEPRUNE_{k}_DIR": str(tmp / k.lower()) for k in ("CACHE", "CONFIG", "TABLES", "MODELS")}
    net, _ = build_model("demo_cnn")
    train_from_scratch(net, load_data("digits"), 4)
    torch.save(net.state_dict(), tmp / "dense.pt")
    run_cli("calibrate", "--model", "demo_cnn", "--points", "8", "--network-variants", "6", *FAST, env=env)
    run_cli("fit", "--model", "demo_cnn", env=env)
    return tmp, env


def _compress(workspace, method, *extra):
    # three epochs: one (~20 steps) left a structure narrowed by a busy CI's closed loop at 49 % on digits
    tmp, env = workspace
    out = tmp / method
    proc = run_cli("compress", "--model", "demo_cnn", "--weights", tmp / "dense.pt", "--data", "digits",
                   "--metric", "latency", "--budget", "0.6", "--method", method, "--epochs", "3", "--out", out,
                   *extra, "--json", env=env, timeout=600)
    return json.loads(proc.stdout), out, proc.stderr


@pytest.mark.parametrize("method", ["uniform", "ecc"])
def test_compress_meets_predicted_budget_and_reports_provenance(workspace, method):
    s, out, log = _compress(workspace, method)
    for key in ("dense", "compressed", "budget", "budget_abs", "metric", "predicted_cost", "measured_cost",
                "cost_source", "artifacts"):
        assert key in s
    assert s["budget"] == "0.6" and s["metric"] == "latency"
    loop = s["closed_loop"]
    assert loop["rounds"][0]["predicted"] <= s["budget_abs"] + 1e-12  # the method met the predicted budget
    assert loop["rounds"][-1]["measured"] > 0
    # a relative budget: the loop decides on the ratio to dense measured alongside (times dense's predicted cost)
    assert all(r["measured_raw"] > 0 and "dense measured alongside" in r["measured_how"] for r in loop["rounds"])
    assert "dense measured alongside" in s["measured_how"] and s["within_budget_measured"] == (
        s["measured_over_budget"] <= 1)
    assert s["measured_over_budget_drift_corrected"] == pytest.approx(s["measured_cost_drift_corrected"]
                                                                      / s["budget_abs"])
    if loop["within_budget"]:  # the structure that goes to fine-tuning measured within budget
        assert loop["measured_before_fine_tune"] <= s["budget_abs"]
        assert s["compressed"]["widths"] in [r["widths"] for r in loop["rounds"]]
    assert s["budget_abs"] == pytest.approx(0.6 * s["dense"]["predicted_cost"])
    assert s["compressed"]["macs"] < s["dense"]["macs"] and s["compressed"]["params"] < s["dense"]["params"]
    assert s["compressed"]["accuracy"] > 0.5 and s["measured_cost"] > 0
    assert "measured" in s["cost_source"] and s["parity"]["passed"]
    model, info = load_compressed(s["artifacts"]["model_dir"])
    assert info["widths"] == s["compressed"]["widths"]
    assert model(torch.zeros(1, 1, 8, 8)).shape == (1, 10)
    # --json keeps stdout to the one object; the phases still show their bars (step/total) on stderr
    for phase in ["fine-tuning", "closed-loop rounds", "export", "final measurement"] + ["ADMM"] * (method == "ecc"):
        assert re.search(rf"{phase}.* \d+/\d+ ", log), (phase, log[-2000:])


def test_infeasible_budget_says_the_floor(workspace):
    tmp, env = workspace
    proc = run_cli("compress", "--model", "demo_cnn", "--weights", tmp / "dense.pt", "--budget", "0.01",
                   "--method", "uniform", "--epochs", "0", "--out", tmp / "x", "--json", env=env, check=False)
    assert proc.returncode == 1
    assert "below the floor" in json.loads(proc.stdout)["error"]


def test_rerun_resumes_after_the_saved_selection_and_reports_outcomes(workspace):
    first, out, _ = _compress(workspace, "uniform", "--no-distill")
    again, _, _ = _compress(workspace, "uniform", "--no-distill")
    assert first["resumed_selection"] is False and again["resumed_selection"] is True
    assert again["compressed"]["widths"] == first["compressed"]["widths"]
    assert again["closed_loop"]["rounds"] == first["closed_loop"]["rounds"]
    changed, _, _ = _compress(workspace, "uniform", "--no-distill", "--lr", "0.02")  # other settings: selected anew
    assert changed["resumed_selection"] is False
    for s in (first, changed):
        assert s["accuracy_change"] == pytest.approx(s["compressed"]["accuracy"] - s["dense"]["accuracy"])
        assert isinstance(s["warnings"], list) and s["closed_loop"]["stopped"]
        assert s["training"]["distilled"] is False and set(s["timings_s"]) >= {"selection", "fine_tuning"}
    assert changed["training"]["lr"] == 0.02 and changed["training"]["device"] == str(pick_device())


def test_halp_compresses_within_the_predicted_budget(workspace):
    s, _, _ = _compress(workspace, "halp", "--halp-steps", "2", "--correction-rounds", "1")
    assert s["method"] == "halp" and s["training"]["distilled"] is True
    assert s["closed_loop"]["rounds"][0]["predicted"] <= s["budget_abs"] + 1e-12
    assert s["compressed"]["macs"] < s["dense"]["macs"]


def test_selection_digest_ignores_where_the_output_folder_is():
    from edgeprune.compress_config import CompressConfig
    from edgeprune.selection_store import config_digest

    here, moved = CompressConfig(out="/a/run"), CompressConfig(out="/b/elsewhere")
    assert config_digest(here) == config_digest(moved)  # a moved run folder resumes its selection
    assert config_digest(here) != config_digest(CompressConfig(out="/a/run", lr=0.02))
