"""uniform: one keep-ratio for every group, bisected to the budget (see prune/uniform.py)."""
from __future__ import annotations

from edgeprune.prune.methods import RankedBaseline, register
from edgeprune.prune.uniform import prune_uniform


@register
class Uniform(RankedBaseline):
    """The uniform baseline."""

    name = "uniform"
    help = "one keep-ratio for every group"
    prune = staticmethod(prune_uniform)
