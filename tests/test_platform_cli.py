import json

from edgeprune.costmodel.platform_layers import platform_cost_model_for
from edgeprune.measure.devices import LocalDevice
from edgeprune.models import build_model
from edgeprune.models.layer_space import build_layer_space
from edgeprune.structure.physical import min_widths
from edgeprune.tables.store import LatencyTable
from conftest import FAST, run_cli


def test_calibrate_platform_fit_predict_and_compress_any_model(isolated_dirs):
    cal = json.loads(run_cli("calibrate", "--platform", "--op-points", "1", "--platform-networks", "2",
                             "--sensor", "none", *FAST, "--json").stdout)
    assert cal["measured"] == 11 + 2 and cal["by_family"]["ops"] == 11
    again = json.loads(run_cli("calibrate", "--platform", "--op-points", "1", "--platform-networks", "2",
                               "--sensor", "none", *FAST, "--json").stdout)
    assert again["measured"] == 0 and again["skipped"] == 13  # resumable: nothing measured twice
    with LatencyTable(isolated_dirs / "tables" / "local.sqlite") as table:
        rows = list(table.rows("network"))
    assert all("graph_features" in json.loads(r["result_json"]) for r in rows)
    fit = json.loads(run_cli("fit", "--platform", "--residual", "none", "--json").stdout)
    assert fit["networks"]["n"] == 13 and fit["fit"]["residual"] == "none"
    out = json.loads(run_cli("predict", "-m", "demo_cnn32", "--json").stdout)
    assert out["predictor"] == "platform" and out["predicted"] > 0
    assert out["provenance"]["networks"]["n"] == 13
    path = fit["platform_model"]
    # Halfway between the floor compress checks (every group at its minimum width) and dense, priced by the per-layer
    # model compress builds from the platform model: feasible whatever this machine measured.
    net, shape = build_model("demo_cnn")
    space = build_layer_space(net, shape)
    cost, _ = platform_cost_model_for(path, LocalDevice().info()["fingerprint_id"], "demo_cnn", space, "onnxruntime")
    dense, floor = cost.predict([space.dense_widths(), min_widths(space)])
    assert floor < dense, "the platform model must see the demo CNN's widths"
    budget = f"{(dense + floor) / 2 / dense:.4f}"
    proc = run_cli("compress", "--model", "demo_cnn", "--data", "digits", "--data-limit", "300", "--metric",
                   "latency", "--budget", budget, "--method", "uniform", "--epochs", "1", "--correction-rounds", "1",
                   "--cost-model", "platform", "--out", isolated_dirs / "out", "--json", timeout=600)
    s = json.loads(proc.stdout)
    assert s["predicted_by"] == path and "platform model" in proc.stderr
    assert s["closed_loop"]["rounds"][0]["predicted"] <= s["budget_abs"] + 1e-12
    assert s["closed_loop"]["rounds"][0]["measured"] > 0  # the closed loop still measures
    assert all(s["compressed"]["widths"][g] <= w for g, w in space.dense_widths().items())
