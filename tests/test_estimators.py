"""The cost models' estimator contract, and their files: versioned JSON they write and read themselves."""
import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from edgeprune.costmodel.bilinear import BilinearLayerModel
from edgeprune.costmodel.features import FeatureSpec
from edgeprune.costmodel.fit import FlopsCostModel
from edgeprune.costmodel.macs import network_macs
from edgeprune.costmodel.model import CostModel
from edgeprune.costmodel.persist import CostModelError
from edgeprune.costmodel.platform import PlatformCostModel
from edgeprune.models import build_model
from edgeprune.models.layer_space import architecture_hash, build_layer_space

SHIPPED = sorted((Path(__file__).resolve().parents[1] / "energy_models").glob("*.json"))


@pytest.fixture(scope="module")
def demo():
    net, shape = build_model("demo_cnn")
    space = build_layer_space(net, shape)
    rng = np.random.default_rng(0)
    widths = [{g.name: int(rng.integers(1, g.width + 1)) for g in space.prunable_groups} for _ in range(12)]
    y = [1.0 + 1e-3 * sum(w.values()) for w in widths]
    return space, widths, y


def test_every_model_refuses_to_predict_before_fit(demo):
    space, widths, _ = demo
    for unfitted, call in ((CostModel(), lambda m: m.predict(widths)),
                           (CostModel(), lambda m: m.layer_costs(widths[0])),
                           (BilinearLayerModel(), lambda m: m.predict([[4, 4]])),
                           (FlopsCostModel(), lambda m: m.predict(widths)),
                           (PlatformCostModel(), lambda m: m.predict([{"nodes": 1.0}]))):
        with pytest.raises(NotFittedError):
            call(unfitted)


def test_spec_is_a_constructor_parameter_and_params_clone(demo):
    space, widths, y = demo
    spec = FeatureSpec(8, 1, 1, 1)
    model = CostModel("network", spec=spec)
    assert model.get_params() == {"source": "network", "spec": spec}
    fitted = clone(model).fit(space, network_widths=widths, network_y=y)
    assert fitted.spec_ == spec and fitted.spec == spec
    assert FlopsCostModel().get_params() == {}
    by_macs = [2.0 + 1e-6 * network_macs(space, w) for w in widths]
    assert np.allclose(FlopsCostModel().fit(space, widths, by_macs).predict(widths), by_macs)
    assert PlatformCostModel("none", seed=3).get_params() == {"residual": "none", "seed": 3}


def test_save_load_round_trip_and_provenance_checks(demo, tmp_path):
    space, widths, y = demo
    model = CostModel("network").fit(space, network_widths=widths, network_y=y)
    arch = architecture_hash(space)
    path = model.save(tmp_path / "cm.json", {"device": {"name": "d", "fingerprint_id": "f" * 16},
                                             "model": {"name": "demo_cnn", "architecture_hash": arch}})
    doc = json.loads(path.read_text())
    assert (doc["format"], doc["format_version"]) == ("edgeprune-cost-model", 1)
    again, meta = CostModel.load(path, architecture_hash=arch, fingerprint_id="f" * 16)
    assert meta["device"]["name"] == "d" and np.allclose(again.predict(widths), model.predict(widths))
    with pytest.raises(CostModelError, match="not this device"):
        CostModel.load(path, fingerprint_id="0" * 16)
    with pytest.raises(CostModelError, match="not this one"):
        CostModel.load(path, architecture_hash="0" * 16)
    assert "pickle" not in path.read_text() and not path.read_bytes().startswith(b"\x80")


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_shipped_cost_models_still_load_and_rewrite_identically(path, tmp_path):
    model, meta = CostModel.load(path)
    assert float(model.predict([{}])[0]) > 0
    copy = model.save(tmp_path / path.name, {k: v for k, v in meta.items()
                                             if k not in ("format", "format_version", "edgeprune_version")})
    assert json.loads(copy.read_text()) == {**json.loads(path.read_text()),
                                            "edgeprune_version": json.loads(copy.read_text())["edgeprune_version"]}


def test_shipped_resnet20_model_matches_this_architecture_hash():
    path = next((p for p in SHIPPED if p.name.startswith("local-resnet20-onnxruntime-t1")), None)
    if path is None:
        pytest.skip("no shipped resnet20 cost model")
    net, shape = build_model("resnet20")
    arch = architecture_hash(build_layer_space(net, shape))
    model, meta = CostModel.load(path, architecture_hash=arch)
    assert meta["model"]["architecture_hash"] == arch
