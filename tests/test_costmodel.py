import json

import numpy as np
import pytest
import torch

from conftest import FAST, run_cli
from edgeprune.costmodel.bilinear import BilinearLayerModel, select_spec
from edgeprune.costmodel.dataset import LayerSamples
from edgeprune.costmodel.features import FeatureSpec
from edgeprune.costmodel.macs import network_macs
from edgeprune.costmodel.metrics import accuracy_report
from edgeprune.costmodel.model import CostModel
from edgeprune.costmodel.persist import CostModelError
from edgeprune.costmodel.torch_cost import differentiable_cost
from edgeprune.models.layer_space import architecture_hash, build_layer_space
from edgeprune.models import build_model

TRUE_SPEC = FeatureSpec(1, 16, 8, 1)


def staircase_cost(X):
    """A synthetic runtime: c_out padded to 16, and a slower kernel when c_in is not a multiple of 8."""
    X = np.asarray(X, dtype=float)
    po = np.ceil(X[:, 1] / 16) * 16
    slow = (X[:, 0] % 8 != 0)
    return 0.002 * X[:, 0] * po * (1 + 0.8 * slow) + 0.01 * X[:, 0] + 0.001 * po + 0.05


def test_estimator_contract_and_exact_recovery():
    rng = np.random.default_rng(0)
    X = rng.integers(1, 65, size=(150, 2))
    y = staircase_cost(X)
    model = BilinearLayerModel(**TRUE_SPEC.to_dict())
    assert model.fit(X, y) is model and model.coef_.shape == (8,) and model.n_features_in_ == 2
    assert np.allclose(model.predict(X), y, rtol=1e-4)
    with pytest.raises(ValueError, match="positive"):
        BilinearLayerModel().fit(X, -y)


def test_feature_search_finds_the_staircase_plain_bilinear_misses():
    rng = np.random.default_rng(1)
    X = rng.integers(1, 65, size=(200, 2))
    samples = {"conv": LayerSamples(None, X.astype(float), staircase_cost(X))}
    spec, report = select_spec(samples)
    assert report["cv_error"] < 0.01 < report["cv_error_plain_bilinear"]
    assert spec.block_out == 16 and spec.align_in == 8


def test_huber_fit_ignores_timing_outliers():
    rng = np.random.default_rng(2)
    X = rng.integers(1, 65, size=(120, 2))
    y = staircase_cost(X)
    noisy = y.copy()
    noisy[::10] *= 1.6  # one in ten measurements hit a slow episode
    m = BilinearLayerModel(**TRUE_SPEC.to_dict()).fit(X, noisy)
    assert np.median(np.abs(m.predict(X) - y) / y) < 0.01


def test_layer_fit_never_gets_cheaper_as_it_widens():
    # Timings that fall with c_out at narrow c_in (noise, or a kernel switch) must not teach the fit that removing
    # output channels makes a layer slower: the pruning search would exploit exactly that.
    X = np.array([(ci, co) for ci in range(1, 65, 3) for co in range(1, 65, 3)], dtype=float)
    y = 0.05 + 0.001 * X[:, 0] * X[:, 1] - 0.0005 * X[:, 1]
    m = BilinearLayerModel().fit(X, y)
    assert np.all(m.coef_ >= 0)
    narrow, wide = m.predict([[1, 1], [4, 1]]), m.predict([[1, 64], [4, 64]])
    assert np.all(wide >= narrow)


def test_network_fit_from_few_noisy_variants_is_monotone():
    model, shape = build_model("resnet20")
    space = build_layer_space(model, shape)
    rng = np.random.default_rng(3)
    dense = space.dense_widths()
    widths = [{k: int(rng.integers(max(1, v // 5), v + 1)) for k, v in dense.items()} for _ in range(10)]
    y = np.array([0.05 + network_macs(space, w) * 1e-8 for w in widths]) * rng.lognormal(0, 0.1, len(widths))
    fitted = CostModel("network", spec=FeatureSpec()).fit(space, network_widths=widths, network_y=y)
    assert min(fitted.correction_["coef"]) >= 0
    chain = fitted.predict([{k: max(1, round(f * v)) for k, v in dense.items()} for f in np.linspace(0.05, 1, 20)])
    assert np.all(np.diff(chain) >= -1e-12)


def test_accuracy_report_values():
    r = accuracy_report([1.0, 2.0, 4.0, 8.0], [1.02, 2.3, 4.0, 7.0])
    assert r["n"] == 4 and r["within_5"] == 0.5 and r["within_10"] == 0.5
    assert r["spearman"] == pytest.approx(1.0) and r["median_ape"] == pytest.approx((0.02 + 0.125) / 2)


@pytest.fixture(scope="module")
def demo_fit(tmp_path_factory):
    """A real calibration of the demo CNN on this CPU, fitted with the CLI."""
    tmp = tmp_path_factory.mktemp("fit")
    table, out = tmp / "t.sqlite", tmp / "cm.json"
    run_cli("calibrate", "--model", "demo_cnn", "--points", "12", "--network-variants", "24", "--table", table,
            *FAST, env={"EDGEPRUNE_CACHE_DIR": str(tmp / "cache")})
    report = json.loads(run_cli("fit", "--model", "demo_cnn", "--table", table, "--out", out, "--json").stdout)
    return table, out, report


def test_fit_cli_reports_heldout_per_predictor(demo_fit):
    _, out, report = demo_fit
    assert set(report["heldout"]) >= {"bilinear_layers", "bilinear_network", "flops"}
    for name in ("bilinear_layers", "bilinear_network", "flops"):
        h = report["heldout"][name]
        assert h["n"] >= 3 and 0 <= h["within_5"] <= h["within_10"] <= 1 and h["median_ape"] >= 0
    assert report["dense_repeats"] == 3 and report["noise_cv"] is not None
    # --from auto (the default) keeps the bilinear source that did best on the held-out variants.
    best = max(("layers", "network", "both"), key=lambda k: (report["heldout"][f"bilinear_{k}"]["within_5"],
                                                             report["heldout"][f"bilinear_{k}"]["spearman"],
                                                             -report["heldout"][f"bilinear_{k}"]["median_ape"]))
    assert report["source"] == best
    saved = json.loads(out.read_text())
    assert saved["format"] == "edgeprune-cost-model" and saved["device"]["name"] == "local"
    assert saved["table"]["rows_digest"] and saved["runtime"]["name"] == "onnxruntime"


def test_predict_cli_and_provenance(demo_fit):
    _, out, _ = demo_fit
    dense = json.loads(run_cli("predict", "--model", "demo_cnn", "--cost-model", out, "--json").stdout)
    small = json.loads(run_cli("predict", "--model", "demo_cnn", "--cost-model", out, "--widths",
                               "conv1:out=4,conv2:out=8,conv3:out=8", "--json").stdout)
    assert dense["ratio_to_dense"] == pytest.approx(1.0) and dense["unit"] == "ms"
    assert small["predicted"] < dense["predicted"]
    assert small["provenance"]["device"]["fingerprint_id"]
    assert small["provenance"]["source"] in ("layers", "network", "both")
    bad = run_cli("predict", "--model", "resnet20", "--cost-model", out, "--json", check=False)
    assert bad.returncode == 1 and "fitted for model 'demo_cnn'" in json.loads(bad.stdout)["error"]


def test_saved_model_round_trips_and_refuses_other_device(demo_fit):
    _, out, _ = demo_fit
    model, shape = build_model("demo_cnn")
    space = build_layer_space(model, shape)
    cm, meta = CostModel.load(out, architecture_hash=architecture_hash(space))
    widths = [{"conv1:out": 5, "conv2:out": 17, "conv3:out": 9}, {}]
    again, _ = CostModel.load(out)
    assert np.allclose(cm.predict(widths), again.predict(widths))
    with pytest.raises(CostModelError, match="not this device"):
        CostModel.load(out, fingerprint_id="0" * 16)
    broken = out.with_name("broken.json")
    broken.write_text(out.read_text()[:200])
    with pytest.raises(CostModelError, match="not valid JSON"):
        CostModel.load(broken)


def test_differentiable_cost_matches_and_has_gradient(demo_fit):
    _, out, _ = demo_fit
    cm, _ = CostModel.load(out)
    groups, cost = differentiable_cost(cm)
    w = torch.tensor([float(cm.dense_widths_[g]) for g in groups], requires_grad=True)
    value = cost(w)
    assert value.item() == pytest.approx(float(cm.predict([{}])[0]), rel=1e-6)
    value.backward()
    assert torch.isfinite(w.grad).all() and w.grad.abs().sum() > 0


def test_layers_source_needs_tables():
    model, shape = build_model("demo_cnn")
    space = build_layer_space(model, shape)
    with pytest.raises(ValueError, match="no single-layer measurements"):
        CostModel("layers").fit(space, {}, [], [])
    with pytest.raises(ValueError, match="at least 3 whole-network"):
        CostModel("network").fit(space, {}, [{}], [1.0])
