import json

from edgeprune.tables.store import LatencyTable
from conftest import FAST, run_cli


def test_calibrate_platform_fit_and_predict_any_model(isolated_dirs):
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
