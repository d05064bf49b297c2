"""ECC's guard rails: a minimum share kept per channel group, and a clear error below that floor."""
import math
import random
from types import SimpleNamespace

import pytest
import torch

from edgeprune.costmodel.macs import network_macs
from edgeprune.costmodel.model import CostModel
from edgeprune.measure.variants import random_widths
from edgeprune.models.layer_space import build_layer_space
from edgeprune.models.zoo import build_model
from edgeprune.prune.budget import InfeasibleBudget
from edgeprune.prune.ecc import EccSettings, prune_ecc


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    model, shape = build_model("resnet20")
    space = build_layer_space(model, shape)
    rng = random.Random(0)
    widths = [random_widths(space, rng, 0.05) for _ in range(60)] + [space.dense_widths()]
    y = [0.05 + network_macs(space, w) * 1e-8 for w in widths]
    cost_model = CostModel(source="network").fit(space, network_widths=widths, network_y=y)
    batches = [(torch.randn(4, 3, 32, 32), torch.randint(0, 10, (4,))) for _ in range(3)]
    return model, space, cost_model, SimpleNamespace(train=batches)


def _run(setup, fraction, **settings):
    model, space, cost_model, data = setup
    budget = fraction * float(cost_model.predict([{}])[0])
    work = build_model("resnet20")[0].train()
    work.load_state_dict(model.state_dict())
    return prune_ecc(work, space, cost_model, budget, data, EccSettings(iters=3, steps=1, **settings)), budget


def test_every_group_keeps_at_least_min_keep(setup):
    result, budget = _run(setup, 0.3, min_keep=0.25)
    assert result.predicted_cost <= budget
    dense = setup[1].dense_widths()
    assert all(result.widths[g] >= math.ceil(0.25 * d) for g, d in dense.items())


def test_a_budget_below_the_min_keep_floor_is_infeasible_and_says_why(setup):
    with pytest.raises(InfeasibleBudget, match="at least 60% of every channel group"):
        _run(setup, 0.2, min_keep=0.6)
    result, budget = _run(setup, 0.2, min_keep=0.0)  # without the guard the same budget is reachable
    assert result.predicted_cost <= budget


def test_select_ecc_grows_back_under_a_looser_target(setup):
    from edgeprune.prune.ecc import select_ecc

    model, space, cost_model, data = setup
    result, budget = _run(setup, 0.4)
    wider = select_ecc(model, space, cost_model, result.widths, 1.3 * budget, data, EccSettings(iters=1, steps=1))
    assert result.predicted_cost < wider.predicted_cost <= 1.3 * budget
    assert all(wider.widths[g] >= w for g, w in result.widths.items())
    assert sum(wider.widths.values()) > sum(result.widths.values())
