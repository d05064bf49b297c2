"""Closed-loop budget correction: measure the pruned structure, rescale the budget by measured ÷ predicted, re-select."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from edgeprune.prune.result import PruneResult

# A method's re-selection at another predicted-cost target, given its current (result, state such as a tuned model):
# the new (result, state), or None when the method cannot move that way (netadapt only shrinks).
Reselect = Callable[[float, PruneResult, Any], "tuple[PruneResult, Any] | None"]


@dataclass(frozen=True)
class LoopSettings:
    """How hard the loop tries: ``rounds`` re-selections at most, aiming at ``aim`` × budget measured, and
    re-selecting a wider model when the measurement is below ``slack`` × budget; a budget relative to dense is
    judged on the median of ``pairs`` (model, dense) measurements (more on a busy device)."""

    rounds: int = 3
    aim: float = 0.99  # the measurement's own run-to-run noise is ~1 %: aim a little under the budget
    slack: float = 0.97
    pairs: int = 3

    def __post_init__(self):
        if self.rounds < 0 or self.pairs < 1 or not 0 < self.slack <= self.aim <= 1:
            raise ValueError(f"invalid closed-loop settings {self}: need rounds >= 0, pairs >= 1 and "
                             "0 < slack <= aim <= 1")


@dataclass
class Corrected:
    """The selection the loop settled on, its measured cost, and one record per measurement."""

    result: PruneResult
    state: Any
    measured: float
    within_budget: bool
    rounds: list[dict] = field(default_factory=list)
    stopped: str = ""  # why the loop ended where it did


def correct_to_budget(result: PruneResult, state: Any, budget: float, measure: Callable[[PruneResult, Any], float],
                      reselect: Reselect, settings: LoopSettings = LoopSettings(),
                      say: Callable[[str], None] = lambda _: None, unit: str = "") -> Corrected:
    """Measure ``result``; while the measurement is over ``budget`` (or far under it), re-select at the predicted
    target scaled by budget ÷ measured, or interpolated once one selection measured under and one over. Returns the
    widest in-budget selection seen, else the last (cheapest) one."""
    best: Corrected | None = None
    over: tuple[PruneResult, float] | None = None  # the cheapest selection measured over budget
    rounds: list[dict] = []
    current, current_state, target = result, state, result.predicted_cost
    for r in range(settings.rounds + 1):
        measured = measure(current, current_state)
        rounds.append({"round": r, "target_predicted": target, "predicted": current.predicted_cost,
                       "measured": measured, "measured_over_budget": measured / budget,
                       "widths": dict(current.widths)})
        say(f"closed loop round {r}: predicted {current.predicted_cost:.4g} {unit} (cost model), measured "
            f"{measured:.4g} {unit} ({measured / budget:.3f} × budget)")
        within = measured <= budget
        if within and (best is None or measured > best.measured):
            best = Corrected(current, current_state, measured, True)
        if not within and (over is None or measured < over[1]):
            over = (current, measured)
        if within and measured >= settings.slack * budget:
            stopped = f"measured within {settings.slack:g}–1 × budget"
            break
        if r == settings.rounds:
            stopped = f"all {settings.rounds} correction round(s) used (--correction-rounds)"
            break
        if best is not None and over is not None:
            # Bracketed: one selection measured under budget, a wider one over. Rescaling either by its own
            # ratio jumps past the other when the cost model's error differs between them; interpolate instead.
            target = _between(best.result.predicted_cost, best.measured, over[0].predicted_cost, over[1],
                              settings.aim * budget)
        else:
            target = current.predicted_cost * settings.aim * budget / measured
        chosen = reselect(target, current, current_state)
        if chosen is None:
            stopped = ("the method cannot move that way (netadapt only shrinks after its search; or the cost "
                       "floor was reached)")
            break
        if any(_same(chosen[0], seen) for seen in (current, best and best.result, over and over[0]) if seen):
            stopped = ("re-selecting at the corrected target gave a structure already measured"
                       + ("; kept the widest in-budget one" if best is not None else ""))
            break
        current, current_state = chosen
    final = best or Corrected(current, current_state, measured, False)
    final.rounds, final.stopped = rounds, stopped
    return final


def _same(a: PruneResult, b: PruneResult) -> bool:
    return a.widths == b.widths and a.blocks_removed == b.blocks_removed


def _between(p_lo: float, m_lo: float, p_hi: float, m_hi: float, goal: float) -> float:
    """The predicted-cost target at which the line through (p_lo, m_lo) and (p_hi, m_hi) measures ``goal``, kept
    inside the bracket's middle 80 % so the next selection differs from both ends."""
    if m_hi <= m_lo or p_hi <= p_lo:  # the measurements do not order like the predictions: halve the bracket
        return (p_lo + p_hi) / 2
    t = min(max((goal - m_lo) / (m_hi - m_lo), 0.1), 0.9)
    return p_lo + t * (p_hi - p_lo)
