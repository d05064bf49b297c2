"""Budget parsing, unit conversion, the infeasible floor and the nothing-to-prune flag."""
import pytest

from edgeprune.costmodel.macs import network_macs
from edgeprune.errors import EdgepruneError
from edgeprune.models.layer_space import build_layer_space
from edgeprune.models.zoo import build_model
from edgeprune.prune.budget import (Budget, BudgetError, InfeasibleBudget, check_reachable, parse_budget,
                                    resolve_budget)


@pytest.mark.parametrize("text, expected", [
    ("4.2mJ", Budget(4.2, "mJ", False)),
    ("3ms", Budget(3.0, "ms", False)),
    ("3.5 ms", Budget(3.5, "ms", False)),
    (" 250us ", Budget(250.0, "us", False)),
    ("1e-3J", Budget(1e-3, "J", False)),
    ("0.5", Budget(0.5, None, True)),
    ("1", Budget(1.0, None, True)),
    ("50%", Budget(0.5, None, True)),
    ("30 %", Budget(0.3, None, True)),
])
def test_parse_budget(text, expected):
    assert parse_budget(text) == expected


@pytest.mark.parametrize("text, match", [
    ("", "cannot read"), ("fast", "cannot read"), ("3 m s", "cannot read"), ("-2ms", "cannot read"),
    ("0ms", "positive"), ("3", "no unit"), ("4.2kWh", "unknown budget unit"),
])
def test_parse_budget_errors(text, match):
    with pytest.raises(BudgetError, match=match):
        parse_budget(text)


@pytest.mark.parametrize("text, metric, value", [
    ("3ms", "latency", 3.0), ("2500us", "latency", 2.5), ("0.004s", "latency", 4.0), ("3 MS", "latency", 3.0),
    ("4.2mJ", "energy", 4.2), ("0.0042J", "energy", 4.2), ("4200uJ", "energy", 4.2),
    ("0.5", "energy", 5.0), ("50%", "latency", 5.0),
])
def test_resolve_budget_converts_to_the_metric_unit(text, metric, value):
    resolved = resolve_budget(text, metric, dense_cost=10.0, floor_cost=1.0)
    assert resolved.value == pytest.approx(value)
    assert float(resolved) == pytest.approx(value)
    assert resolved.unit == {"latency": "ms", "energy": "mJ"}[metric]
    assert not resolved.nothing_to_prune


def test_resolve_budget_rejects_the_other_metric_and_unknown_metric():
    with pytest.raises(BudgetError, match="is an energy but the metric is latency"):
        resolve_budget("4mJ", "latency", 10.0, 1.0)
    with pytest.raises(BudgetError, match="is a latency but the metric is energy"):
        resolve_budget(parse_budget("4ms"), "energy", 10.0, 1.0)
    with pytest.raises(BudgetError, match="unknown metric"):
        resolve_budget("4ms", "flops", 10.0, 1.0)


def test_infeasible_budget_states_floor_and_dense_with_units():
    with pytest.raises(InfeasibleBudget) as info:
        resolve_budget("0.1", "energy", dense_cost=8.0, floor_cost=2.0)
    message = str(info.value)
    assert "0.8 mJ" in message and "floor of 2 mJ" in message and "25.0% of dense" in message
    assert "dense model costs 8 mJ" in message
    assert isinstance(info.value, EdgepruneError)
    assert resolve_budget("2ms", "latency", 8.0, 2.0).value == 2.0  # exactly the floor is allowed


def test_budget_at_or_above_dense_is_flagged_not_an_error():
    assert resolve_budget("9ms", "latency", 8.0, 2.0).nothing_to_prune
    assert resolve_budget("1", "latency", 8.0, 2.0).nothing_to_prune
    assert resolve_budget("150%", "latency", 8.0, 2.0).value == pytest.approx(12.0)


def test_check_reachable_uses_the_minimum_widths():
    model, shape = build_model("demo_cnn", widths=(16, 32, 32))
    space = build_layer_space(model, shape)
    cost = lambda w: network_macs(space, w) / 1e5  # noqa: E731
    dense, floor = check_reachable(cost, space, 1.0)
    assert dense == pytest.approx(network_macs(space) / 1e5)
    assert floor == pytest.approx(cost({"conv1:out": 1, "conv2:out": 1, "conv3:out": 1}))
    _, floor8 = check_reachable(cost, space, 2.0, round_to=8)
    assert floor8 == pytest.approx(cost({"conv1:out": 8, "conv2:out": 8, "conv3:out": 8}))
    with pytest.raises(InfeasibleBudget, match=f"floor of {floor8:.4g}"):
        check_reachable(cost, space, floor8 * 0.9, round_to=8)


def test_a_budget_at_dense_is_feasible_even_when_the_floor_is_priced_above_dense():
    """A tiny, overhead-dominated network's fit can price the floor above dense; dense still meets 1.0 × dense."""
    resolved = resolve_budget("1.0", "latency", dense_cost=1.0, floor_cost=1.02)
    assert resolved.nothing_to_prune and resolved.value == 1.0
    with pytest.raises(InfeasibleBudget):
        resolve_budget("0.99", "latency", dense_cost=1.0, floor_cost=1.02)
