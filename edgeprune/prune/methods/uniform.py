"""uniform: one keep-ratio for every group, bisected to the budget (see prune/uniform.py)."""
from __future__ import annotations

from edgeprune.prune.methods import PruningMethod, register
from edgeprune.prune.uniform import prune_uniform


@register
class Uniform(PruningMethod):
    """The uniform baseline."""

    name = "uniform"
    help = "one keep-ratio for every group"

    def select(self, ctx, settings, budget):
        return prune_uniform(ctx.model, ctx.space, ctx.cost, budget, round_to=ctx.round_to, data=ctx.data,
                             **ctx.ranking()), None

    def reselect(self, ctx, settings, target, current, state):
        return self.select(ctx, settings, target)
