"""HALP: the latency-saliency knapsack against brute force, and the method on a real ResNet-20 layer space."""
import itertools
import math

import numpy as np
import pytest
import torch

from edgeprune.prune.budget import InfeasibleBudget
from edgeprune.prune.halp import HalpSettings, knapsack, prune_halp
from edgeprune.structure.physical import apply_kept
from resnet_cost import resnet20_with_cost_model


def test_knapsack_matches_brute_force():
    rng = np.random.default_rng(0)
    for _ in range(30):
        groups = rng.integers(2, 4)
        values = [np.sort(rng.random(4) * 5)[::-1] for _ in range(groups)]  # lose less value by keeping more
        values = [v - v[-1] for v in values]
        savings = [np.sort(rng.random(4) * 3)[::-1] for _ in range(groups)]
        savings = [s - s[-1] for s in savings]
        need = float(rng.random() * sum(s.max() for s in savings))
        best = min((sum(v[k] for v, k in zip(values, ks)), ks) for ks in itertools.product(range(4), repeat=groups)
                   if sum(s[k] for s, k in zip(savings, ks)) >= need)
        picks = knapsack(values, savings, need)
        assert sum(s[k] for s, k in zip(savings, picks)) >= need * (1 - 1e-3)  # covers (to the bin resolution)
        assert sum(v[k] for v, k in zip(values, picks)) <= best[0] + 1e-6 + 0.01 * max(best[0], 1)


def test_knapsack_takes_the_largest_saving_when_nothing_covers():
    picks = knapsack([np.array([2.0, 0.0])], [np.array([1.0, 0.0])], need=5.0)
    assert picks == [0]


@pytest.fixture(scope="module")
def setup():
    return resnet20_with_cost_model(batch=8, batches=4)


@pytest.mark.parametrize("round_to", [None, 4])
def test_halp_meets_the_budget_and_its_model_matches_its_channels(setup, round_to):
    model, space, cost_model, data = setup
    budget = 0.5 * float(cost_model.predict([{}])[0])
    settings = HalpSettings(steps=2, tune_steps=1, min_keep=0.2, criterion_batches=1, round_to=round_to)
    result, pruned = prune_halp(model, space, cost_model.predict, budget, data, settings)
    assert result.predicted_cost <= budget
    assert result.predicted_cost >= 0.9 * budget  # the knapsack spends the budget rather than overshooting
    dense = space.dense_widths()
    for g, w in result.widths.items():
        assert w >= math.ceil(0.2 * dense[g]) and len(result.kept[g]) == w
        assert round_to is None or w % round_to == 0 or w == dense[g]
    assert [h["step"] for h in result.history] == [1, 2]
    expected = apply_kept(model, space, result.kept)  # same structure as removing the kept dense channels at once
    assert [p.shape for p in pruned.parameters()] == [p.shape for p in expected.parameters()]
    assert pruned(torch.zeros(1, 3, 32, 32)).shape == (1, 10)


def test_halp_below_its_floor_is_infeasible(setup):
    model, space, cost_model, data = setup
    with pytest.raises(InfeasibleBudget, match="at least 60%"):
        prune_halp(model, space, cost_model.predict, 0.1 * float(cost_model.predict([{}])[0]), data,
                   HalpSettings(min_keep=0.6))
