import json

import numpy as np
import pytest

from edgeprune.costmodel import platform_persist
from edgeprune.costmodel.platform import PlatformCostModel
from edgeprune.costmodel.residual import ResidualBooster
from edgeprune.measure.export import to_onnx_bytes
from edgeprune.measure.graph_features import onnx_features
from edgeprune.measure.platform_plan import NetworkSpec, build_network, plan_networks
from edgeprune.models.cellnet import cellnet
from edgeprune.models.shufflenet import shufflenet

SMALL_CELL = {"channels": 8, "cells": 1}


def features(net, shape=(1, 3, 32, 32)):
    return onnx_features(to_onnx_bytes(net, shape))


def test_dead_cell_paths_are_not_counted():
    # 1→2→3 path is dead when node 1 gets nothing from the input: only the 0→3 conv remains.
    live = features(cellnet("conv3x3|none|conv3x3|conv3x3|none|conv3x3", **SMALL_CELL))
    dead = features(cellnet("none|none|conv3x3|conv3x3|none|conv3x3", **SMALL_CELL))
    assert dead["conv_k3s1_nchwc.count"] < live["conv_k3s1_nchwc.count"]
    # every remaining conv is a real node of the optimised graph (conv + BN + ReLU fused into one)
    assert live["nodes"] < 60


def test_shufflenet_graph_has_concat_split_and_transpose():
    f = features(shufflenet(stem=16, widths=(32, 64, 128), repeats=(2, 1, 1), last=128))
    for kind in ("concat", "transpose", "split"):
        assert f[f"{kind}.count"] >= 1 and f[f"{kind}.elems"] > 0
    assert any(k.startswith("conv_dw3") for k in f)


def test_features_are_cached_per_graph(isolated_dirs):
    data = to_onnx_bytes(cellnet(**SMALL_CELL), (1, 3, 32, 32))
    first = onnx_features(data)
    cached = list((isolated_dirs / "cache" / "graph_features").glob("*.json"))
    assert len(cached) == 1
    cached[0].write_text(json.dumps({"nodes": -1.0}))  # the cache, not a recomputation, answers next time
    assert onnx_features(data) == {"nodes": -1.0} and first["nodes"] > 0


def _truth(f: dict) -> float:
    """A device whose cost is linear in the graph's per-kind work, plus a fixed call overhead."""
    return 0.05 + 2e-8 * sum(v for k, v in f.items() if k.endswith(".macs")) + 3e-7 * f.get("eltwise.elems", 0) \
        + 1e-3 * f["nodes"]


@pytest.fixture(scope="module")
def measured_like(tmp_path_factory):
    """Real graphs of four families, with costs from a known per-op law."""
    specs = [s for s in plan_networks(40, seed=3) if s.model != "resnet56"]
    rows = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EDGEPRUNE_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        for s in specs:
            net, shape = build_network(s)
            f = onnx_features(to_onnx_bytes(net, shape))
            rows.append((s.family, f, _truth(f)))
    return rows


def test_predicts_a_family_it_never_saw(measured_like):
    train = [r for r in measured_like if r[0] != "shufflenet"]
    test = [r for r in measured_like if r[0] == "shufflenet"]
    model = PlatformCostModel("none").fit([f for _, f, _ in train], [y for *_, y in train],
                                          groups=[g for g, *_ in train])
    assert np.all(model.coef_ >= 0)
    pred = model.predict([f for _, f, _ in test])
    truth = np.array([y for *_, y in test])
    assert np.max(np.abs(pred - truth) / truth) < 0.05


def test_json_round_trip_predicts_the_same(measured_like, isolated_dirs):
    feats, y = [f for _, f, _ in measured_like], [t for *_, t in measured_like]
    model = PlatformCostModel("hgb").fit(feats, y)
    path = platform_persist.save(model, {"device": {"name": "d", "fingerprint_id": "f"}}, isolated_dirs / "p.json")
    assert "pickle" not in path.read_text()
    again, meta = platform_persist.load(path, fingerprint_id="f")
    assert np.allclose(again.predict(feats), model.predict(feats))
    with pytest.raises(platform_persist.CostModelError, match="fitted on device"):
        platform_persist.load(path, fingerprint_id="other")


def test_booster_trees_match_scikit_learn():
    from sklearn.ensemble import HistGradientBoostingRegressor

    from edgeprune.costmodel.residual import PARAMS

    rng = np.random.default_rng(0)
    X, y = rng.random((120, 4)) * 50, rng.random(120) + 1
    base = np.full(120, np.median(y))
    booster = ResidualBooster(0).fit(X, y, base)
    ref = HistGradientBoostingRegressor(random_state=0, **PARAMS).fit(X, np.log(y / base))
    Xt = rng.random((30, 4)) * 50
    assert np.allclose(ResidualBooster.from_dict(json.loads(json.dumps(booster.to_dict()))).raw(Xt), ref.predict(Xt))


def test_degenerate_fits_warn(measured_like):
    feats = [f for _, f, _ in measured_like]
    y = np.array([t for *_, t in measured_like])
    y[0] = y.min() * 1e-3  # a broken near-zero measurement
    model = PlatformCostModel("none").fit(feats, y, noise_cv=10.0)
    text = " ".join(model.report_["warnings"])
    assert "below 1 % of the median" in text
    assert "less than the measurement noise" in text


def test_plan_covers_families_and_rebuilds():
    plan = plan_networks(8, seed=1)
    assert {s.family for s in plan} == {"cell", "resnet", "mobilenetv2", "shufflenet"}
    spec = next(s for s in plan if s.widths)
    net, shape = build_network(NetworkSpec.from_dict(json.loads(json.dumps(spec.to_dict()))))
    assert net(__import__("torch").zeros(*shape)).shape == (1, 10)


def test_needs_enough_networks():
    with pytest.raises(ValueError, match="at least 5"):
        PlatformCostModel().fit([{"nodes": 1.0}] * 3, [1.0, 2.0, 3.0])
