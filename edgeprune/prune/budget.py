"""Cost budgets: parse '4.2mJ' / '3 ms' / '0.5' / '50%' and resolve them to the metric's unit."""
from __future__ import annotations

import re
from dataclasses import dataclass

from edgeprune.errors import EdgepruneError
from edgeprune.models.layer_space import LayerSpace
from edgeprune.structure.physical import min_widths

# Per metric: its canonical unit and how many canonical units one of each accepted unit is.
UNITS = {
    "latency": ("ms", {"ns": 1e-6, "us": 1e-3, "µs": 1e-3, "ms": 1.0, "s": 1e3}),
    "energy": ("mJ", {"nj": 1e-6, "uj": 1e-3, "µj": 1e-3, "mj": 1.0, "j": 1e3}),
}
_PATTERN = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(%|[a-zA-Zµ]+)?\s*$")


class BudgetError(EdgepruneError):
    """A budget string that cannot be understood, or one in a unit of another metric."""


class InfeasibleBudget(EdgepruneError):
    """The budget is below the cheapest model the cost model can reach (every group at its minimum width)."""


@dataclass(frozen=True)
class Budget:
    """A budget as given: an absolute value with a unit, or a fraction of the dense model's cost."""

    value: float
    unit: str | None
    relative: bool

    def __str__(self) -> str:
        return f"{self.value:g} × dense" if self.relative else f"{self.value:g} {self.unit}"


@dataclass(frozen=True)
class ResolvedBudget:
    """A budget in the metric's unit, with the dense cost and floor it was checked against."""

    value: float
    unit: str
    dense_cost: float
    floor_cost: float
    nothing_to_prune: bool  # the dense model already meets the budget
    relative: bool = False  # given as a fraction of dense: measured as a ratio to the dense model alongside

    def __float__(self) -> float:
        return self.value


def parse_budget(text: str) -> Budget:
    """'4.2mJ', '3 ms', '250us' → absolute; '0.5' or '50%' → relative to the dense cost."""
    match = _PATTERN.match(str(text))
    if not match:
        raise BudgetError(f"cannot read budget {text!r}; use e.g. 4.2mJ, 3ms, 0.5 (of dense) or 50%")
    value, unit = float(match.group(1)), match.group(2)
    if value <= 0:
        raise BudgetError(f"budget must be positive, got {text!r}")
    if unit == "%":
        return Budget(value / 100.0, None, True)
    if unit is None:
        if value > 1:
            raise BudgetError(f"budget {text!r} has no unit; a relative budget is a fraction of dense in (0, 1] "
                              f"(or a percentage); for an absolute one add a unit, e.g. {value:g}ms or {value:g}mJ")
        return Budget(value, None, True)
    if _metric_of(unit) is None:
        known = sorted({u for _, table in UNITS.values() for u in table})
        raise BudgetError(f"unknown budget unit {unit!r} in {text!r}; known (any case): {', '.join(known)}")
    return Budget(value, unit, False)


def _metric_of(unit: str) -> str | None:
    """The metric a unit measures, or None."""
    key = unit.lower()
    for metric, (_, table) in UNITS.items():
        if key in table:
            return metric
    return None


def check_budget(budget: Budget | str, metric: str) -> Budget:
    """The parsed budget; BudgetError for an unknown metric or a unit of another metric (no cost model needed)."""
    if metric not in UNITS:
        raise BudgetError(f"unknown metric {metric!r}; choose one of {sorted(UNITS)}")
    if isinstance(budget, str):
        budget = parse_budget(budget)
    owner = None if budget.relative else _metric_of(budget.unit)
    if owner is not None and owner != metric:
        unit, table = UNITS[metric]
        raise BudgetError(f"budget {budget} is a{'n' if owner == 'energy' else ''} {owner} but the metric is "
                          f"{metric}; give it in {unit} (or {', '.join(u for u in table if u != unit)})",
                          hint=f"or use --metric {owner}")
    return budget


def resolve_budget(budget: Budget | str, metric: str, dense_cost: float, floor_cost: float) -> ResolvedBudget:
    """Absolute budget in the metric's unit (ms or mJ), checked against the floor; ``float()`` gives the value."""
    budget = check_budget(budget, metric)
    unit, table = UNITS[metric]
    value = budget.value * dense_cost if budget.relative else budget.value * table[budget.unit.lower()]
    if value < min(floor_cost, dense_cost):  # the dense model always meets a budget at or above its own cost
        raise InfeasibleBudget(_infeasible(f"budget {budget} = {value:.4g} {unit}", floor_cost, dense_cost, unit))
    return ResolvedBudget(value, unit, float(dense_cost), float(floor_cost), value >= dense_cost, budget.relative)


def _infeasible(what: str, floor_cost: float, dense_cost: float, unit: str) -> str:
    """The message of an InfeasibleBudget: the budget, the floor and the dense cost, with units."""
    share = f" ({floor_cost / dense_cost:.1%} of dense)" if dense_cost > 0 else ""
    return (f"{what} is below the floor of {floor_cost:.4g} {unit}{share}, the predicted cost with every prunable "
            f"group at its minimum width; the dense model costs {dense_cost:.4g} {unit}")


def check_reachable(cost_fn, space: LayerSpace, budget_abs: float, round_to: int | None = None,
                    unit: str = "(cost-model units)", min_keep: float = 0.0) -> tuple[float, float]:
    """(dense cost, floor cost) of ``space`` under ``cost_fn``, every group keeping at least ``min_keep`` of its
    channels; InfeasibleBudget when the floor exceeds the budget."""
    dense_cost = float(cost_fn(space.dense_widths()))
    floor_cost = float(cost_fn(min_widths(space, round_to, min_keep)))
    if budget_abs < floor_cost:
        message = _infeasible(f"budget {budget_abs:.4g} {unit}", floor_cost, dense_cost, unit)
        if min_keep > 0:
            message += f"; every group keeps at least {min_keep:.0%} of its channels (lower --min-keep)"
        raise InfeasibleBudget(message)
    return dense_cost, floor_cost
