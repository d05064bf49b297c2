"""The closed loop rescales the budget by measured ÷ predicted and re-selects until the measurement fits."""
import pytest
import torch

from edgeprune.costmodel.macs import network_macs
from edgeprune.models.layer_space import build_layer_space
from edgeprune.models.zoo import build_model
from edgeprune.prune.budget import InfeasibleBudget
from edgeprune.prune.closed_loop import LoopSettings, correct_to_budget
from edgeprune.prune.uniform import prune_uniform


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    model, shape = build_model("demo_cnn", widths=(16, 32, 32))
    space = build_layer_space(model, shape)
    predicted = lambda w: 0.1 + network_macs(space, w) * 1e-5  # noqa: E731
    return model, space, predicted


def _uniform(model, space, cost):
    def reselect(target, current, state):
        try:
            return prune_uniform(model, space, cost, target), None
        except InfeasibleBudget:
            return None
    return reselect


def _device(cost, factor):
    """A device whose latency the cost model under-predicts by ``factor`` (what made ecc overshoot)."""
    return lambda result, state: factor * cost(result.widths)


def test_over_budget_is_tightened_until_the_measurement_fits(setup):
    model, space, cost = setup
    budget = 0.5 * cost(space.dense_widths())
    first = prune_uniform(model, space, cost, budget)
    out = correct_to_budget(first, None, budget, _device(cost, 1.12), _uniform(model, space, cost))
    assert out.rounds[0]["measured_over_budget"] > 1.03  # the uncorrected selection overshoots
    assert out.within_budget and out.measured <= budget
    assert out.result.predicted_cost < first.predicted_cost
    assert out.measured == pytest.approx(1.12 * cost(out.result.widths))
    assert out.rounds[1]["target_predicted"] == pytest.approx(first.predicted_cost * 0.99 * budget
                                                              / out.rounds[0]["measured"])


def test_far_under_budget_is_relaxed_but_never_over(setup):
    model, space, cost = setup
    budget = 0.5 * cost(space.dense_widths())
    first = prune_uniform(model, space, cost, budget)
    out = correct_to_budget(first, None, budget, _device(cost, 0.85), _uniform(model, space, cost))
    assert out.rounds[0]["measured_over_budget"] < 0.97
    assert out.within_budget and out.measured <= budget
    assert out.result.predicted_cost > first.predicted_cost  # wider than the method's own pick


def test_a_method_that_only_shrinks_keeps_its_selection_when_under(setup):
    model, space, cost = setup
    budget = 0.5 * cost(space.dense_widths())
    first = prune_uniform(model, space, cost, budget)
    out = correct_to_budget(first, None, budget, _device(cost, 0.8), lambda t, c, s: None)
    assert len(out.rounds) == 1 and out.result is first and out.within_budget


def test_a_bracketed_budget_is_interpolated_not_rescaled_past(setup):
    model, space, cost = setup
    budget = 0.5 * cost(space.dense_widths())
    first = prune_uniform(model, space, cost, budget)
    # The cost model's error grows with the width: rescaling the over-budget pick lands far under, and rescaling
    # that one back lands on the first pick again. Between the two lies a selection that fits.
    device = lambda result, state: 1.3 * cost(result.widths) ** 2 / budget  # noqa: E731
    out = correct_to_budget(first, None, budget, device, _uniform(model, space, cost))
    over, under = out.rounds[0], out.rounds[1]
    assert over["measured_over_budget"] > 1.03 and under["measured_over_budget"] < 0.9
    assert under["predicted"] < out.rounds[2]["target_predicted"] < over["predicted"]
    assert out.within_budget and out.measured >= 0.9 * budget, out.rounds


def test_out_of_rounds_returns_the_cheapest_and_says_so(setup):
    model, space, cost = setup
    budget = 0.5 * cost(space.dense_widths())
    first = prune_uniform(model, space, cost, budget)
    # An overhead the cost model misses entirely: each rescaling under-corrects, so one round is not enough.
    device = lambda result, state: cost(result.widths) + 0.4 * budget  # noqa: E731
    out = correct_to_budget(first, None, budget, device, _uniform(model, space, cost), LoopSettings(rounds=1))
    assert len(out.rounds) == 2 and not out.within_budget
    assert out.result.predicted_cost < first.predicted_cost and out.measured == out.rounds[-1]["measured"]
    measured_only = correct_to_budget(first, None, budget, device, _uniform(model, space, cost), LoopSettings(0))
    assert len(measured_only.rounds) == 1 and measured_only.result is first and not measured_only.within_budget


def test_settings_are_checked():
    with pytest.raises(ValueError, match="closed-loop"):
        LoopSettings(rounds=-1)
    with pytest.raises(ValueError, match="closed-loop"):
        LoopSettings(slack=1.0, aim=0.99)


def test_a_target_below_the_floor_is_raised_to_the_cheapest_reachable_one():
    from types import SimpleNamespace

    from edgeprune.prune.floor import reselect_above_floor as _reselect

    class FloorAt:
        """A method whose re-selection reaches any target at or above ``floor``."""

        def __init__(self, floor):
            self.floor, self.asked = floor, []

        def reselect(self, ctx, settings, target, current, state):
            self.asked.append(target)
            if target < self.floor:
                raise InfeasibleBudget(f"{target} is below the floor {self.floor}")
            return SimpleNamespace(predicted_cost=target), state

    current = SimpleNamespace(predicted_cost=1.0)
    method = FloorAt(0.5)
    chosen, _ = _reselect(method, None, None)(0.2, current, None)
    assert 0.5 <= chosen.predicted_cost < 1.0 and method.asked[0] == 0.2
    assert _reselect(FloorAt(1.5), None, None)(0.2, current, None) is None  # nothing cheaper is reachable


def test_an_infeasible_channel_budget_on_a_resnet_points_to_joint():
    from edgeprune.models import build_model
    from edgeprune.prune.floor import joint_hint as _floor_hint

    resnet, _ = build_model("resnet20")
    plain, _ = build_model("demo_cnn")
    hints = {}
    for name, method, net in (("ecc", "ecc", resnet), ("joint", "joint", resnet), ("no_blocks", "ecc", plain)):
        with pytest.raises(InfeasibleBudget) as info, _floor_hint(method, net):
            raise InfeasibleBudget("budget 0.1 ms is below the floor")
        hints[name] = info.value.hint
    assert "--method joint" in hints["ecc"] and hints["joint"] is None and hints["no_blocks"] is None
