"""Channel criteria l1/l2/bn/fpgm/taylor/apoz: lengths, definitions on a tiny CNN, and the methods that use them."""
import copy
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from edgeprune.costmodel.macs import network_macs
from edgeprune.data import load_data
from edgeprune.models.layer_space import build_layer_space
from edgeprune.models.zoo import build_model
from edgeprune.prune.global_magnitude import prune_global
from edgeprune.prune.importance import CRITERIA, channel_importance, keep_top
from edgeprune.prune.netadapt import netadapt_search
from edgeprune.prune.short_tune import take_batches
from edgeprune.prune.uniform import prune_uniform


@pytest.fixture(scope="module")
def batches():
    """Three fixed digits batches: a stand-in data object whose splits always yield the same ones."""
    return take_batches(load_data("digits", batch_size=32).train, 3)


def _data(batches):
    return SimpleNamespace(train=batches, val=batches)


def _model(seed=0):
    """demo_cnn (16, 32, 32) with non-trivial BN statistics, in eval mode."""
    torch.manual_seed(seed)
    model, shape = build_model("demo_cnn", widths=(16, 32, 32))
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(8, *shape[1:]))
    return model.eval(), build_layer_space(model, shape)


def _state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("criterion", CRITERIA)
def test_every_criterion_scores_every_channel_and_leaves_the_model_alone(batches, criterion):
    model, space = _model()
    before = _state(model)
    scores = channel_importance(model, space, criterion, _data(batches), batches=2)
    assert {k: v.shape for k, v in scores.items()} == {"conv1:out": (16,), "conv2:out": (32,), "conv3:out": (32,)}
    for v in scores.values():
        assert np.isfinite(v).all() and (v >= 0).all() and v.dtype == np.float64
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())
    assert not model.training


def test_bn_is_the_absolute_bn_scale(batches):
    model, space = _model()
    with torch.no_grad():
        model.bn2.weight.copy_(torch.linspace(-2.0, 2.0, 32))
        model.bn2.weight[20] = 0.0
    scores = channel_importance(model, space, "bn")["conv2:out"]
    np.testing.assert_allclose(scores, model.bn2.weight.detach().abs().numpy(), rtol=1e-6)
    assert int(np.argmin(scores)) == 20
    assert 20 not in keep_top({"conv2:out": scores}, {"conv2:out": 31})["conv2:out"]


def test_fpgm_is_the_summed_distance_and_drops_the_filter_at_the_median():
    model, space = _model()
    k = 7
    with torch.no_grad():  # positive weights, so torch-pruning's |w| leaves the geometry as it is
        model.conv2.weight.abs_()
        model.conv3.weight.abs_()
        others = [i for i in range(32) if i != k]
        model.conv2.weight[k] = model.conv2.weight[others].mean(0)  # filter k sits at the centre of the rest
        model.conv3.weight[:, k] = model.conv3.weight[:, others].mean(1)  # and so does its consumer slice
    scores = channel_importance(model, space, "fpgm")["conv2:out"]
    out = model.conv2.weight.detach().flatten(1)
    inp = model.conv3.weight.detach().transpose(0, 1).flatten(1)
    expected = torch.cdist(out, out).sum(0) + torch.cdist(inp, inp).sum(0)
    np.testing.assert_allclose(scores, expected.numpy(), rtol=1e-4)
    assert int(np.argmin(scores)) == k
    l1 = channel_importance(model, space, "l1")["conv2:out"]
    assert int(np.argmin(l1)) != k  # magnitude alone would not single it out


def test_taylor_is_weight_times_gradient_summed_over_the_group(batches):
    model, space = _model()
    with torch.no_grad():  # channel 3 of conv1's group contributes nothing: zero filter and zero consumer slice
        model.conv1.weight[3] = 0
        model.conv2.weight[:, 3] = 0
    scores = channel_importance(model, space, "taylor", _data(batches), batches=3)
    ref = copy.deepcopy(model)
    for x, y in batches:
        F.cross_entropy(ref(x), y).backward()
    w1, g1 = ref.conv1.weight.detach(), ref.conv1.weight.grad
    w2, g2 = ref.conv2.weight.detach(), ref.conv2.weight.grad
    expected = (w1 * g1).abs().flatten(1).sum(1) + (w2 * g2).abs().transpose(0, 1).flatten(1).sum(1)
    np.testing.assert_allclose(scores["conv1:out"], expected.numpy(), rtol=1e-4, atol=1e-9)
    assert scores["conv1:out"][3] == 0 and (np.delete(scores["conv1:out"], 3) > 0).all()
    fewer = channel_importance(model, space, "taylor", _data(batches), batches=1)["conv1:out"]
    assert not np.allclose(fewer, scores["conv1:out"])  # the number of batches matters


def test_apoz_is_one_minus_the_share_of_zeros_the_consumer_reads(batches):
    model, space = _model()
    with torch.no_grad():  # channel 5 of conv1 is dead after its ReLU: BN maps it to -1 whatever the input
        model.bn1.weight[5] = 0
        model.bn1.bias[5] = -1
    scores = channel_importance(model, space, "apoz", _data(batches), batches=3)
    seen = []
    hook = model.conv2.register_forward_hook(lambda m, inp, out: seen.append(inp[0].detach()))
    with torch.no_grad():
        for x, _ in batches:
            model(x)
    hook.remove()
    x = torch.cat(seen)
    expected = 1 - (x == 0).double().mean(dim=(0, 2, 3))
    np.testing.assert_allclose(scores["conv1:out"], expected.numpy(), rtol=1e-9)
    assert scores["conv1:out"][5] == 0 and int(np.argmin(scores["conv1:out"])) == 5
    assert (np.delete(scores["conv1:out"], 5) > 0).all()


@pytest.mark.parametrize("criterion", ["taylor", "apoz"])
def test_data_driven_criteria_without_data_are_refused(criterion):
    model, space = _model()
    with pytest.raises(ValueError, match=f"criterion '{criterion}' needs training data"):
        channel_importance(model, space, criterion)
    with pytest.raises(ValueError, match="needs training data"):
        prune_uniform(model, space, lambda w: 1.0, 0.5, criterion=criterion)
    with pytest.raises(ValueError, match="unknown importance criterion 'l3'"):
        channel_importance(model, space, "l3")


def test_methods_select_channels_by_the_criterion(batches):
    model, space = _model()
    with torch.no_grad():
        model.bn2.weight.copy_(torch.linspace(0.5, 0.01, 32))  # |γ| falls with the index
    cost = lambda w: 0.1 + network_macs(space, w) * 1e-5  # noqa: E731
    budget = 0.5 * cost({})
    bn = prune_uniform(model, space, cost, budget, criterion="bn")
    assert bn.kept["conv2:out"] == list(range(bn.widths["conv2:out"]))  # the largest |γ| are kept
    assert prune_uniform(model, space, cost, budget).kept["conv2:out"] != bn.kept["conv2:out"]
    glob = prune_global(model, space, cost, budget, criterion="apoz", data=_data(batches), criterion_batches=2)
    assert glob.predicted_cost <= budget
    result, pruned = netadapt_search(model, space, cost, 0.8 * cost({}), _data(batches), step_fraction=0.15,
                                     short_tune_steps=0, eval_batches=1, criterion="bn")
    assert result.predicted_cost <= 0.8 * cost({})
    assert result.widths["conv2:out"] < 32  # NetAdapt shrank conv2 and kept its largest |γ|
    assert result.kept["conv2:out"] == list(range(result.widths["conv2:out"]))
