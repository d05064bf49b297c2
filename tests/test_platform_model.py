import json

import numpy as np
import pytest
import torch

from edgeprune.costmodel import platform_persist
from edgeprune.costmodel.platform import PlatformCostModel
from edgeprune.costmodel.residual import ResidualBooster
from edgeprune.formats import to_onnx_bytes
from edgeprune.measure.graph_features import onnx_features
from edgeprune.measure.platform_plan import NetworkSpec, build_network, plan_networks
from edgeprune.models.cellnet import cellnet
from edgeprune.models.mobilenetv2 import mobilenetv2
from edgeprune.models.opbench import OPS, SingleOp, single_op
from edgeprune.models.shufflenet import shufflenet

SMALL_CELL = {"channels": 8, "cells": 1}


def features(net, shape=(1, 3, 32, 32)):
    if isinstance(net, SingleOp):
        shape = (1, net.c_in) if net.op == "linear" else (1, net.c_in, net.hw, net.hw)
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


NETWORKS = ([("cell", cellnet, {"arch": a, "channels": c, "cells": 1})
             for a, c in (("conv3x3|skip|conv1x1|avgpool3x3|none|conv3x3", 16), ("skip|conv1x1|none|conv3x3|skip|skip", 16),
                          ("conv1x1|conv1x1|conv3x3|none|skip|avgpool3x3", 32), ("avgpool3x3|conv3x3|skip|conv1x1|conv3x3|none", 32),
                          ("conv3x3|conv3x3|conv3x3|conv3x3|conv3x3|conv3x3", 16), ("skip|skip|skip|conv1x1|conv1x1|conv1x1", 32))]
            + [("mobilenetv2", mobilenetv2, {"width_mult": w}) for w in (0.5, 1.0, 1.5)]
            + [("shufflenet", shufflenet, {"stem": 16, "widths": w, "repeats": r, "last": 128})
               for w, r in (((32, 64, 128), (1, 1, 1)), ((64, 64, 128), (2, 1, 1)), ((32, 96, 192), (1, 2, 1)))]
            # calibrate --platform's micro-benchmarks: every op kind alone, so no kind is new to the fit
            + [("ops", lambda **kw: single_op(**kw)[0], {"op": op, "c_in": c, "c_out": c, "hw": hw})
               for op in OPS for c, hw in ((16, 32), (64, 16))])


@pytest.fixture(scope="module")
def measured_like(tmp_path_factory):
    """Real graphs of three families, with costs from a known per-op law."""
    rows = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EDGEPRUNE_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        for family, builder, kw in NETWORKS:
            f = features(builder(**kw))
            rows.append((family, f, _truth(f)))
    return rows


def test_predicts_a_family_it_never_saw(measured_like):
    train = [r for r in measured_like if r[0] != "shufflenet"]
    test = [r for r in measured_like if r[0] == "shufflenet"]
    model = PlatformCostModel("none").fit([f for _, f, _ in train], [y for *_, y in train],
                                          groups=[g for g, *_ in train])
    assert np.all(model.coef_ >= 0)
    pred = model.predict([f for _, f, _ in test])
    truth = np.array([y for *_, y in test])
    assert np.max(np.abs(pred - truth) / truth) < 0.10


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
    from threadpoolctl import threadpool_limits

    from edgeprune.costmodel.residual import PARAMS

    rng = np.random.default_rng(0)
    X, y = rng.random((120, 4)) * 50, rng.random(120) + 1
    base = np.full(120, np.median(y))
    booster = ResidualBooster(0).fit(X, y, base)
    with threadpool_limits(1, user_api="openmp"):  # spinning OpenMP workers stall on a busy CPU
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


def test_layer_breakdown_follows_the_platform_terms(measured_like):
    from edgeprune.costmodel.platform_layers import platform_cost_model
    from edgeprune.models import build_model
    from edgeprune.models.layer_space import build_layer_space

    model = PlatformCostModel("none").fit([f for _, f, _ in measured_like], [t for *_, t in measured_like])
    net, shape = build_model("resnet20")
    space = build_layer_space(net, shape)
    dense = onnx_features(to_onnx_bytes(net, shape))
    cm = platform_cost_model(model, space, dense)
    assert cm.predict([{}])[0] == pytest.approx(model.predict([dense])[0], rel=1e-6)
    narrow = {g.name: max(1, g.width // 2) for g in space.prunable_groups}
    assert cm.predict([narrow])[0] < cm.predict([{}])[0]
    assert set(cm.layer_costs({})) == {layer.name for layer in space.layers}


def test_weight_elements_are_counted_once_per_conv_and_linear():
    # channels on the NCHWc block (16), so the optimised graph's weights are the module's, unpadded
    from edgeprune.models import build_model

    net, shape = build_model("resnet20")
    expected = sum(m.weight.numel() for m in net.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)))
    assert onnx_features(to_onnx_bytes(net, shape))["weights.elems"] == expected
    mnet = mobilenetv2(width_mult=0.5)  # depthwise weights are c·k², not c²·k²; NCHWc pads some channels
    module = sum(m.weight.numel() for m in mnet.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)))
    assert module <= features(mnet)["weights.elems"] <= 1.25 * module


def test_layer_breakdown_prices_each_weight():
    from edgeprune.costmodel.platform_layers import platform_cost_model
    from edgeprune.models import build_model
    from edgeprune.models.layer_space import build_layer_space

    theta = 2e-6
    model = PlatformCostModel.from_dict({"columns": ["weights.elems"], "coef": [theta, 0.0], "alpha": 1e-5,
                                         "floor": 0.0, "residual": "none", "seed": 0, "booster": None})
    net, shape = build_model("resnet20")
    space = build_layer_space(net, shape)
    cm = platform_cost_model(model, space, onnx_features(to_onnx_bytes(net, shape)))
    numel = {name: m.weight.numel() for name, m in net.named_modules()
             if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))}
    costs = cm.layer_costs({})
    assert costs == pytest.approx({name: theta * numel[name] for name in costs}, rel=1e-9)
    half = {g.name: g.width // 2 for g in space.prunable_groups}
    assert cm.predict([half])[0] < 0.5 * cm.predict([{}])[0]  # weights shrink with both widths of a layer


def test_plain_and_nchwc_layouts_share_one_mac_cost():
    # the two layouts of a conv kind move together in the training families; fitted apart they swap cost between
    # draws, so the model prices a MAC of a kind the same whichever layout runs it
    rng = np.random.default_rng(0)
    feats = []
    for _ in range(60):
        plain, nchwc, k1 = rng.uniform(0, 4e6), rng.uniform(1e6, 8e6), rng.uniform(1e6, 8e6)
        feats.append({"conv_k3s1_plain.macs": plain, "conv_k3s1_nchwc.macs": nchwc, "conv_k1s1_nchwc.macs": k1,
                      "conv_k3s1_plain.count": 2.0, "conv_k3s1_nchwc.count": 6.0, "nodes": 12.0})
    y = [0.05 + 3e-8 * (f["conv_k3s1_plain.macs"] + f["conv_k3s1_nchwc.macs"]) + 1e-8 * f["conv_k1s1_nchwc.macs"]
         for f in feats]
    model = PlatformCostModel("none").fit(feats, y)
    terms = model.terms()
    assert terms["conv_k3s1_plain.macs"] == terms["conv_k3s1_nchwc.macs"] == pytest.approx(3e-8, rel=0.05)
    assert terms["conv_k1s1_nchwc.macs"] == pytest.approx(1e-8, rel=0.05)
    assert np.allclose(model.predict(feats), y, rtol=0.02)
    assert np.array_equal(model.conv_terms("conv_k3s1_plain")[:1], model.conv_terms("conv_k3s1_nchwc")[:1])
