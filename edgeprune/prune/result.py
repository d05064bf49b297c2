"""What every pruning method returns: the widths and exactly which channels each group keeps."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

# A method's view of the device: predicted network cost (ms or mJ) at per-group widths.
CostFn = Callable[[dict[str, int]], float]


@dataclass
class PruneResult:
    """Outcome of a pruning method, before physical removal and fine-tuning."""

    method: str
    widths: dict[str, int]
    kept: dict[str, list[int]]  # sorted channel indices kept per prunable group
    predicted_cost: float
    history: list[dict] = field(default_factory=list)
    blocks_removed: list[str] = field(default_factory=list)  # residual blocks replaced by their shortcut (joint)
