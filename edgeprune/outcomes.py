"""Whether a compression result is one to ship: warnings for chance-level or collapsed accuracy and unused budget."""
from __future__ import annotations

CHANCE_FACTOR = 1.5  # accuracy at or below this × 1/classes counts as chance
FAR_BELOW_PT = 10.0  # points below dense that make a result a warning
UNUSED_BELOW = 0.9  # measured cost under this share of the budget leaves budget unused


def accuracy_warnings(dense_acc: float, acc: float, num_classes: int | None, what: str = "compressed model") -> list[str]:
    """Warnings for an accuracy near chance or far below the dense model's, with what to try."""
    out = []
    if num_classes and acc <= CHANCE_FACTOR / num_classes:
        out.append(f"{what} is at chance level: {acc:.1%} with {num_classes} classes (chance {1 / num_classes:.1%}); "
                   "it is not usable — fine-tune longer (--epochs), on more data (raise --data-limit), keep "
                   "distillation on, or loosen the budget")
    elif dense_acc - acc > FAR_BELOW_PT / 100:
        out.append(f"{what} is {100 * (dense_acc - acc):.1f} pt below dense ({acc:.1%} vs {dense_acc:.1%}): fine-tune "
                   "longer (--epochs), on more data, keep distillation on, or loosen the budget")
    return out


def budget_warnings(measured_over_budget: float, loop_stopped: str, metric: str) -> list[str]:
    """A warning when the measured cost leaves a large part of the budget unused, saying why the loop stopped."""
    if measured_over_budget >= UNUSED_BELOW:
        return []
    return [f"measured {metric} is {measured_over_budget:.2f} × budget: {1 - measured_over_budget:.0%} of the budget "
            f"is unused (closed loop stopped: {loop_stopped or 'not run'}); a wider model would likely be more "
            "accurate — raise --correction-rounds, use a method that can widen (not netadapt), or re-run "
            "on a quieter device"]
