"""When a budget is below a method's floor: the closed loop's raised re-selection, and the hint towards joint."""
from __future__ import annotations

import contextlib

from edgeprune.prune.budget import InfeasibleBudget
from edgeprune.prune.methods import Context
from edgeprune.structure.blocks import removable_blocks

FLOOR_TRIES = 6  # closed loop: raises of an unreachable target before it counts as the floor


def reselect_above_floor(method, ctx: Context, settings):
    """The closed loop's re-selection: the method's; a target below the method's floor is raised towards the current
    prediction until reachable (so a model that measures far over budget still shrinks as far as it can), and None
    ("cannot move that way") when no cheaper target is reachable."""
    def reselect(target: float, current, state):
        for _ in range(FLOOR_TRIES):
            try:
                return method.reselect(ctx, settings, target, current, state)
            except InfeasibleBudget:
                target = (target * current.predicted_cost) ** 0.5  # half-way, geometrically, to the current cost
        return None
    return reselect


@contextlib.contextmanager
def joint_hint(method: str, net):
    """An infeasible budget from a channel-only method on a network with removable residual blocks says that
    ``joint``, which also removes blocks (and their per-op overhead), reaches lower."""
    try:
        yield
    except InfeasibleBudget as exc:
        if method == "joint" or not removable_blocks(net) or exc.hint:
            raise
        raise InfeasibleBudget(str(exc), hint="or --method joint, which also removes whole residual blocks and so "
                                              "reaches a lower cost") from exc
