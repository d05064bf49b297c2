"""The README's main job, `edgeprune demo`, end to end (slow: it calibrates this CPU; the data folders are the
test's own, conftest.isolated_dirs)."""
import json

import pytest

from conftest import run_cli


@pytest.mark.slow
def test_demo_trains_calibrates_and_compresses_to_half_the_energy(tmp_path):
    s = json.loads(run_cli("demo", "--out", tmp_path / "demo", "--epochs", "1", "--json", timeout=900).stdout)
    assert s["budget"] == "0.5" and s["metric"] == "energy" and "estimate" in s["cost_source"]
    assert s["predicted_cost"] <= s["budget_abs"] * 1.001 and s["measured_cost"] > 0
    assert s["compressed"]["macs"] < s["dense"]["macs"] and s["compressed"]["accuracy"] > 0.8
    assert (tmp_path / "demo" / "dense.pt").is_file()
