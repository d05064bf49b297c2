"""uniform, global and NetAdapt reach the predicted-cost budget with consistent widths and kept channels."""
import math
import random

import numpy as np
import pytest
import torch

from edgeprune.costmodel.macs import network_macs
from edgeprune.costmodel.model import CostModel
from edgeprune.data import load_data
from edgeprune.measure.variants import random_widths
from edgeprune.models.layer_space import build_layer_space
from edgeprune.models.zoo import build_model
from edgeprune.prune.budget import InfeasibleBudget
from edgeprune.prune.global_magnitude import prune_global
from edgeprune.prune.netadapt import NetAdaptIncomplete, netadapt_search, prune_netadapt
from edgeprune.structure.physical import apply_kept
from edgeprune.prune.short_tune import holdout_accuracy, take_batches
from edgeprune.prune.uniform import prune_uniform
from edgeprune.train import evaluate, train_from_scratch


@pytest.fixture(scope="module")
def digits():
    return load_data("digits", batch_size=32)


@pytest.fixture(scope="module")
def trained(digits):
    """demo_cnn trained briefly on digits (well above chance), with its layer space."""
    torch.manual_seed(0)
    model, shape = build_model("demo_cnn", widths=(16, 32, 32))
    accuracy = train_from_scratch(model, digits, 2, lr=0.05).final["accuracy"]
    assert accuracy > 0.8
    return model, build_layer_space(model, shape)


def macs_cost(space):
    """A CostFn proportional to MACs plus a fixed overhead (ms-like numbers)."""
    return lambda widths: 0.1 + network_macs(space, widths) * 1e-5


def fitted_cost(space):
    """A real CostModel fitted on synthetic whole-network samples, used through predict()."""
    rng = random.Random(0)
    widths = [random_widths(space, rng, 0.05) for _ in range(40)] + [space.dense_widths()]
    y = [0.2 + network_macs(space, w) * 1e-5 * (1 + 0.02 * rng.random()) for w in widths]
    model = CostModel(source="network").fit(space, network_widths=widths, network_y=y)
    return lambda w: float(model.predict([w])[0])


def measured_macs(model, shape):
    """MACs of the model's conv/linear layers counted from their real shapes in one forward pass."""
    total = []

    def hook(mod, inp, out):
        if isinstance(mod, torch.nn.Linear):
            total.append(mod.in_features * mod.out_features)
        else:
            k = mod.weight.shape[1] * mod.weight.shape[2] * mod.weight.shape[3]
            total.append(out.shape[1] * out.shape[2] * out.shape[3] * k)

    layers = [m for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    hooks = [m.register_forward_hook(hook) for m in layers]
    with torch.no_grad():
        model(torch.randn(*shape))
    for h in hooks:
        h.remove()
    return sum(total)


def check_result(result, space, cost_fn, budget, round_to=None):
    dense = space.dense_widths()
    assert set(result.widths) == set(dense) == set(result.kept)
    for g, w in result.widths.items():
        assert 1 <= w <= dense[g]
        kept = result.kept[g]
        assert len(kept) == w and kept == sorted(set(kept)) and 0 <= kept[0] and kept[-1] < dense[g]
        if round_to and dense[g] >= round_to:
            assert w % round_to == 0 or w == dense[g]
    assert result.predicted_cost == pytest.approx(cost_fn(result.widths))
    assert result.predicted_cost <= budget


@pytest.mark.parametrize("prune", [prune_uniform, prune_global])
@pytest.mark.parametrize("make_cost", [macs_cost, fitted_cost])
def test_baselines_meet_the_budget_closely(trained, prune, make_cost):
    model, space = trained
    cost_fn = make_cost(space)
    dense_cost = cost_fn({})
    for fraction in (0.3, 0.6):
        budget = fraction * dense_cost
        result = prune(model, space, cost_fn, budget)
        check_result(result, space, cost_fn, budget)
        assert result.predicted_cost > 0.8 * budget  # close from below, not far under
        assert result.history[-1]["macs"] == network_macs(space, result.widths)
    assert prune(model, space, cost_fn, 1.5 * dense_cost).widths == space.dense_widths()


def test_uniform_uses_one_ratio_and_l1_channels(trained):
    model, space = trained
    cost_fn = macs_cost(space)
    result = prune_uniform(model, space, cost_fn, 0.5 * cost_fn({}))
    ratios = {g: result.widths[g] / w for g, w in space.dense_widths().items()}
    assert max(ratios.values()) - min(ratios.values()) < 1 / 16 + 1e-9  # ceil on 16/32 channels
    l1 = model.conv2.weight.detach().abs().flatten(1).sum(1)  # dominant term of conv2's group
    strongest = int(torch.argmax(l1 + model.conv3.weight.detach().abs().transpose(0, 1).flatten(1).sum(1)))
    assert strongest in result.kept["conv2:out"]


def test_global_removes_the_weakest_normalised_channels(trained):
    model, space = trained
    cost_fn = macs_cost(space)
    result = prune_global(model, space, cost_fn, 0.5 * cost_fn({}))
    assert len(set(result.widths.values())) > 1  # not uniform
    final = result.history[-1]
    assert final["step"] == "result" and final["macs"] < final["dense_macs"]


def test_global_keeps_min_keep_of_every_group_and_names_it_when_that_floor_is_above_the_budget(trained):
    model, space = trained
    cost_fn = macs_cost(space)
    dense = space.dense_widths()
    budget = 0.25 * cost_fn({})
    free = prune_global(model, space, cost_fn, budget)
    deepest = min(w / dense[g] for g, w in free.widths.items())
    min_keep = deepest + 0.03  # binds on the group the ranking cut deepest (its floor still fits the budget)
    kept = prune_global(model, space, cost_fn, budget, min_keep=min_keep)
    check_result(kept, space, cost_fn, budget)
    assert all(w >= math.ceil(min_keep * dense[g] - 1e-9) for g, w in kept.widths.items())
    assert kept.widths != free.widths
    with pytest.raises(InfeasibleBudget, match="min-keep"):
        prune_global(model, space, cost_fn, 0.1 * cost_fn({}), min_keep=0.4)


@pytest.mark.parametrize("prune", [prune_uniform, prune_global])
def test_round_to_8(trained, prune):
    model, space = trained
    cost_fn = macs_cost(space)
    budget = 0.45 * cost_fn({})
    result = prune(model, space, cost_fn, budget, round_to=8)
    check_result(result, space, cost_fn, budget, round_to=8)
    assert all(w % 8 == 0 for w in result.widths.values())


def test_resnet20_baselines_prune_inner_groups_and_streams():
    model, shape = build_model("resnet20")
    space = build_layer_space(model, shape)
    cost_fn = macs_cost(space)
    budget = 0.3 * cost_fn({})  # below the 43 % floor of inner widths alone: the streams must shrink too
    for prune in (prune_uniform, prune_global):
        result = prune(model, space, cost_fn, budget)
        check_result(result, space, cost_fn, budget)
        pruned = apply_kept(model, space, result.kept)
        assert measured_macs(pruned, shape) == network_macs(space, result.widths)
        assert pruned.layer1[0].conv2.out_channels == result.widths["conv1:out"] < 16
        assert pruned(torch.randn(1, *shape[1:])).shape == (1, 10)


@pytest.mark.parametrize("prune", [prune_uniform, prune_global])
def test_infeasible_budget(trained, prune):
    model, space = trained
    cost_fn = macs_cost(space)
    floor = cost_fn({g: 1 for g in space.dense_widths()})
    with pytest.raises(InfeasibleBudget, match=f"floor of {floor:.4g}"):
        prune(model, space, cost_fn, 0.9 * floor)


def test_netadapt_meets_budget_after_short_tunes(trained, digits):
    model, space = trained
    cost_fn = macs_cost(space)
    budget = 0.6 * cost_fn({})
    seen, before = [], {k: v.clone() for k, v in model.state_dict().items()}
    result, pruned = netadapt_search(model, space, cost_fn, budget, digits, step_fraction=0.15,
                                     short_tune_steps=5, progress=seen.append)
    check_result(result, space, cost_fn, budget)
    steps = result.history[1:]
    assert steps and seen == steps
    for step in steps:
        assert set(step["proposals"]) <= set(space.dense_widths())
        assert step["accuracy"] == max(step["proposals"].values())
        assert step["cost"] <= step["target"]
    assert [s["cost"] for s in steps] == sorted((s["cost"] for s in steps), reverse=True)
    # The returned model has the result's widths and keeps its short-tuned accuracy on the held-out slice.
    holdout = take_batches(digits.val, 4)
    assert holdout_accuracy(pruned, holdout) == pytest.approx(steps[-1]["accuracy"])
    assert pruned.conv2.out_channels == result.widths["conv2:out"]
    # Better than keeping random channels at the same widths with no tuning.
    rng = np.random.default_rng(0)
    random_kept = {g: sorted(rng.choice(space.dense_widths()[g], w, replace=False).tolist())
                   for g, w in result.widths.items()}
    assert steps[-1]["accuracy"] >= holdout_accuracy(apply_kept(model, space, random_kept), holdout)
    assert evaluate(pruned, digits.val)["accuracy"] > 0.5
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())  # the input model is untouched


def assert_dense_with_kept(pruned, dense, space, kept):
    """``pruned`` holds exactly ``dense``'s weights for the ``kept`` channels."""
    expected = apply_kept(dense, space, kept).state_dict()
    for name, tensor in pruned.state_dict().items():
        assert torch.equal(tensor, expected[name]), name


def test_netadapt_kept_indices_refer_to_the_dense_model(trained, digits):
    model, space = trained
    cost_fn = macs_cost(space)
    result, pruned = netadapt_search(model, space, cost_fn, 0.4 * cost_fn({}), digits, step_fraction=0.1,
                                     short_tune_steps=0)
    groups = [s["group"] for s in result.history[1:]]
    assert max(groups.count(g) for g in set(groups)) >= 2  # some group was pruned more than once
    # Without tuning, the search's model is exactly the dense model with the reported channels kept.
    assert_dense_with_kept(pruned, model, space, result.kept)


def test_netadapt_round_to_and_incomplete(trained, digits):
    model, space = trained
    cost_fn = macs_cost(space)
    budget = 0.5 * cost_fn({})
    result = prune_netadapt(model, space, cost_fn, budget, digits, step_fraction=0.2, short_tune_steps=0,
                            round_to=8)
    check_result(result, space, cost_fn, budget, round_to=8)
    with pytest.raises(NetAdaptIncomplete, match="stopped after 1 step.*raise max_iters") as info:
        prune_netadapt(model, space, cost_fn, budget, digits, step_fraction=0.05, short_tune_steps=0,
                       max_iters=1)
    partial = info.value.result
    assert partial.predicted_cost > budget and len(partial.history) == 2
    assert info.value.model.conv1.out_channels == partial.widths["conv1:out"]


def test_netadapt_goes_on_from_an_earlier_search(trained, digits):
    model, space = trained
    cost_fn = macs_cost(space)
    first, pruned = netadapt_search(model, space, cost_fn, 0.6 * cost_fn({}), digits, step_fraction=0.1,
                                    short_tune_steps=0)
    more, deeper = netadapt_search(model, space, cost_fn, 0.4 * cost_fn({}), digits, step_fraction=0.1,
                                   short_tune_steps=0, start=(first, pruned))
    check_result(more, space, cost_fn, 0.4 * cost_fn({}))
    assert more.history[:len(first.history)] == first.history and len(more.history) > len(first.history)
    assert all(more.widths[g] <= first.widths[g] for g in first.widths)
    # Still indices into the dense model: without tuning, the deeper model is the dense one with those kept.
    assert_dense_with_kept(deeper, model, space, more.kept)


def test_netadapt_min_keep_floor(trained, digits):
    model, space = trained
    cost_fn = macs_cost(space)
    dense = space.dense_widths()
    result, _ = netadapt_search(model, space, cost_fn, 0.45 * cost_fn({}), digits, step_fraction=0.15,
                                short_tune_steps=0, min_keep=0.3)
    check_result(result, space, cost_fn, 0.45 * cost_fn({}))
    assert all(w >= math.ceil(0.3 * dense[g]) for g, w in result.widths.items())
    floor = cost_fn({g: math.ceil(0.3 * w) for g, w in dense.items()})
    with pytest.raises(InfeasibleBudget, match="keeps at least 30%"):
        netadapt_search(model, space, cost_fn, 0.99 * floor, digits, short_tune_steps=0, min_keep=0.3)
