"""global: drop the network-wide weakest channels until the budget is met (see prune/global_magnitude.py)."""
from __future__ import annotations

from dataclasses import dataclass, field

from edgeprune.prune.global_magnitude import prune_global
from edgeprune.prune.methods import RankedBaseline, register


@dataclass
class GlobalSettings:
    """The floor no group is cut below (without one, global ranking cut ResNet-20's groups to 1 channel at 0.3)."""

    min_keep: float = field(default=0.2, metadata={
        "option": "--min-keep", "help": "Keep at least this share of every channel group."})

    def __post_init__(self):
        if not 0 <= self.min_keep < 1:
            raise ValueError(f"global needs 0 <= min_keep < 1, got {self.min_keep}")


@register
class Global(RankedBaseline):
    """The global-ranking baseline."""

    name = "global"
    help = "network-wide weakest channels first"
    settings = GlobalSettings
    prune = staticmethod(prune_global)  # its settings' fields (min_keep) go to it as keywords
