"""global: drop the network-wide weakest channels until the budget is met (see prune/global_magnitude.py)."""
from __future__ import annotations

from edgeprune.prune.global_magnitude import prune_global
from edgeprune.prune.methods import PruningMethod, register


@register
class Global(PruningMethod):
    """The global-ranking baseline."""

    name = "global"
    help = "network-wide weakest channels first"

    def select(self, ctx, settings, budget):
        return prune_global(ctx.model, ctx.space, ctx.cost, budget, round_to=ctx.round_to, data=ctx.data,
                            **ctx.ranking()), None

    def reselect(self, ctx, settings, target, current, state):
        return self.select(ctx, settings, target)
