"""Channel importance, physical removal through torch-pruning, and width grids."""
import numpy as np
import pytest
import torch

from edgeprune.models.layer_space import build_layer_space
from edgeprune.models.zoo import build_model
from edgeprune.prune.importance import channel_importance, keep_top
from edgeprune.structure.physical import allowed_widths, apply_kept, min_widths, round_widths


SMALL = {"demo_cnn": {"widths": (16, 32, 32)}}  # fixed widths: the tests name channel indices


def _model(name, seed=0):
    torch.manual_seed(seed)
    model, shape = build_model(name, **SMALL.get(name, {}))
    model.train()
    with torch.no_grad():  # non-trivial BN statistics, so a wrong BN slice shows
        for _ in range(3):
            model(torch.randn(8, *shape[1:]))
    return model.eval(), build_layer_space(model, shape), shape


def _silence(model, bn_name, idxs):
    """Zero BN scale and shift of ``idxs`` so those channels are exactly 0 after the activation."""
    bn = dict(model.named_modules())[bn_name]
    with torch.no_grad():
        bn.weight[idxs] = 0
        bn.bias[idxs] = 0


def _l1(t, dim_first=True):
    return (t if dim_first else t.transpose(0, 1)).detach().flatten(1).abs().sum(1)


def test_importance_is_the_group_l1_over_coupled_layers():
    model, space, _ = _model("demo_cnn")
    imp = channel_importance(model, space)
    assert set(imp) == {"conv1:out", "conv2:out", "conv3:out"}
    assert {k: v.shape for k, v in imp.items()} == {"conv1:out": (16,), "conv2:out": (32,), "conv3:out": (32,)}
    expected = _l1(model.conv1.weight) + _l1(model.conv2.weight, False) + model.bn1.weight.detach().abs()
    np.testing.assert_allclose(imp["conv1:out"], expected.numpy(), rtol=1e-5)
    expected3 = _l1(model.conv3.weight) + _l1(model.linear.weight, False) + model.bn3.weight.detach().abs()
    np.testing.assert_allclose(imp["conv3:out"], expected3.numpy(), rtol=1e-5)
    l2 = channel_importance(model, space, "l2")["conv1:out"]
    expected2 = (model.conv1.weight.detach().flatten(1) ** 2).sum(1) + (model.conv2.weight.detach()
                                                                       .transpose(0, 1).flatten(1) ** 2).sum(1)
    np.testing.assert_allclose(l2, (expected2 + model.bn1.weight.detach() ** 2).numpy(), rtol=1e-5)
    with pytest.raises(ValueError, match="criterion"):
        channel_importance(model, space, "taylor")


def test_importance_counts_depthwise_filters():
    model, space, _ = _model("mobilenetv2")
    imp = channel_importance(model, space)
    assert set(imp) == {g.name for g in space.prunable_groups}
    mods = dict(model.named_modules())
    p = "features.17.conv."
    expected = (_l1(mods[p + "0.0"].weight) + _l1(mods[p + "1.0"].weight) + _l1(mods[p + "2"].weight, False)
                + mods[p + "0.1"].weight.detach().abs() + mods[p + "1.1"].weight.detach().abs())
    np.testing.assert_allclose(imp["features.17.conv.1.0:out"], expected.numpy(), rtol=1e-5)


def test_keep_top_picks_the_largest_and_sorts():
    imp = {"a": np.array([0.5, 3.0, 1.0, 2.0]), "b": np.array([1.0, 1.0])}
    assert keep_top(imp, {"a": 2}) == {"a": [1, 3], "b": [0, 1]}
    assert keep_top(imp, {"a": 3, "b": 1}) == {"a": [1, 2, 3], "b": [0]}
    with pytest.raises(ValueError, match="cannot keep 5 of 4"):
        keep_top(imp, {"a": 5})
    with pytest.raises(ValueError, match="without importance"):
        keep_top(imp, {"c": 1})


def test_apply_kept_removes_exactly_the_chosen_channels():
    model, space, shape = _model("demo_cnn")
    kept = {"conv1:out": [0, 3, 4, 9, 15], "conv3:out": list(range(0, 32, 3))}
    pruned = apply_kept(model, space, kept)
    k1, k3 = kept["conv1:out"], kept["conv3:out"]
    assert torch.equal(pruned.conv1.weight, model.conv1.weight[k1])
    assert torch.equal(pruned.conv2.weight, model.conv2.weight[:, k1])
    for attr in ("weight", "bias", "running_mean", "running_var"):
        assert torch.equal(getattr(pruned.bn1, attr), getattr(model.bn1, attr)[k1])
    assert torch.equal(pruned.conv3.weight, model.conv3.weight[k3])
    assert torch.equal(pruned.linear.weight, model.linear.weight[:, k3])
    assert model.conv1.weight.shape[0] == 16  # the original is untouched
    # Silenced channels contribute nothing, so removing them must not change the output at all.
    for bn, idxs in (("bn1", k1), ("bn3", k3)):
        _silence(model, bn, [i for i in range(model.get_submodule(bn).num_features) if i not in idxs])
    pruned = apply_kept(model, space, kept)
    x = torch.randn(4, *shape[1:])
    with torch.no_grad():
        torch.testing.assert_close(pruned(x), model(x), rtol=1e-5, atol=1e-6)


def test_apply_kept_nothing_removed_is_an_identical_copy():
    model, space, shape = _model("resnet20")
    copy = apply_kept(model, space, {g: list(range(w)) for g, w in space.dense_widths().items()})
    assert copy is not model
    x = torch.randn(2, *shape[1:])
    with torch.no_grad():
        assert torch.equal(copy(x), model(x))


def test_apply_kept_resnet20_inner_group():
    model, space, shape = _model("resnet20")
    group = "layer2.1.conv1:out"
    kept = [1, 2, 5, 8, 13, 21, 30]
    _silence(model, "layer2.1.bn1", [i for i in range(32) if i not in kept])
    pruned = apply_kept(model, space, {group: kept})
    assert torch.equal(pruned.layer2[1].conv1.weight, model.layer2[1].conv1.weight[kept])
    assert torch.equal(pruned.layer2[1].conv2.weight, model.layer2[1].conv2.weight[:, kept])
    assert pruned.layer2[1].conv2.out_channels == 32  # the residual stream is fixed
    x = torch.randn(2, *shape[1:])
    with torch.no_grad():
        torch.testing.assert_close(pruned(x), model(x), rtol=1e-4, atol=1e-5)


def test_apply_kept_mobilenetv2_depthwise_group():
    model, space, shape = _model("mobilenetv2")
    group, p = "features.16.conv.1.0:out", "features.16.conv."
    kept = sorted(np.random.default_rng(0).choice(960, size=100, replace=False).tolist())
    _silence(model, p + "1.1", [i for i in range(960) if i not in kept])
    pruned = apply_kept(model, space, {group: kept})
    mods, orig = dict(pruned.named_modules()), dict(model.named_modules())
    assert torch.equal(mods[p + "0.0"].weight, orig[p + "0.0"].weight[kept])
    assert torch.equal(mods[p + "1.0"].weight, orig[p + "1.0"].weight[kept])
    assert mods[p + "1.0"].groups == 100
    assert torch.equal(mods[p + "2"].weight, orig[p + "2"].weight[:, kept])
    x = torch.randn(2, *shape[1:])
    with torch.no_grad():
        torch.testing.assert_close(pruned(x), model(x), rtol=1e-4, atol=1e-5)


def test_apply_kept_on_a_pruned_model_composes():
    model, space, _ = _model("demo_cnn")
    first = apply_kept(model, space, {"conv2:out": list(range(4, 32))})  # 28 left: originals 4..31
    second = apply_kept(first, space, {"conv2:out": [0, 10, 27]})  # originals 4, 14, 31
    assert torch.equal(second.conv2.weight, model.conv2.weight[[4, 14, 31]])


@pytest.mark.parametrize("kept, match", [
    ({"conv1:out": []}, "at least one"),
    ({"conv1:out": [0, 16]}, r"outside 0..15"),
    ({"conv1:out": [-1, 2]}, "outside"),
    ({"conv1:out": [2, 2, 3]}, "repeat"),
    ({"conv1:out": [0.5]}, "integers"),
    ({"linear:out": [0]}, "fixed"),
    ({"nope:out": [0]}, "unknown channel group"),
])
def test_apply_kept_rejects_bad_indices(kept, match):
    model, space, _ = _model("demo_cnn")
    with pytest.raises(ValueError, match=match):
        apply_kept(model, space, kept)


def test_width_grids_and_rounding():
    assert allowed_widths(5) == [1, 2, 3, 4, 5]
    assert allowed_widths(32, 8) == [8, 16, 24, 32]
    assert allowed_widths(20, 8) == [8, 16, 20]
    assert allowed_widths(6, 8) == [1, 2, 3, 4, 5, 6]
    dense = {"a": 32, "b": 20, "c": 6}
    assert round_widths({"a": 13, "b": 19, "c": 3}, 8, dense) == {"a": 16, "b": 20, "c": 3}
    assert round_widths({"a": 2, "b": 11, "c": 6}, 8, dense) == {"a": 8, "b": 8, "c": 6}
    assert round_widths({"a": 13}, None, dense) == {"a": 13}
    with pytest.raises(ValueError, match="positive integer"):
        round_widths({"a": 13}, 0, dense)
    _, space, _ = _model("demo_cnn")
    assert min_widths(space) == {"conv1:out": 1, "conv2:out": 1, "conv3:out": 1}
    assert min_widths(space, 16) == {"conv1:out": 16, "conv2:out": 16, "conv3:out": 16}
