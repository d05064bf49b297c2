"""global: drop the network-wide weakest channels until the budget is met (see prune/global_magnitude.py)."""
from __future__ import annotations

from edgeprune.prune.global_magnitude import prune_global
from edgeprune.prune.methods import RankedBaseline, register


@register
class Global(RankedBaseline):
    """The global-ranking baseline."""

    name = "global"
    help = "network-wide weakest channels first"
    prune = staticmethod(prune_global)
