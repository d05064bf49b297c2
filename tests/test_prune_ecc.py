"""ECC's guard rails: a minimum share kept per channel group, and a clear error below that floor."""
import math

import pytest

from edgeprune.models.zoo import build_model
from edgeprune.prune.budget import InfeasibleBudget
from edgeprune.prune.ecc import EccSettings, prune_ecc
from resnet_cost import resnet20_with_cost_model


@pytest.fixture(scope="module")
def setup():
    return resnet20_with_cost_model()


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
