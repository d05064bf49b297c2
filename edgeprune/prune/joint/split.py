"""How much of a cost saving came from removing blocks (depth) and how much from removing channels (width)."""
from __future__ import annotations


def saving_split(dense: float, depth_only: float, width_only: float, final: float) -> dict:
    """Shapley split of ``dense − final`` between depth and width: each gets its saving averaged over both orders
    (blocks first, channels first), so the two parts add up to the total whatever the interaction."""
    depth = ((dense - depth_only) + (width_only - final)) / 2
    width = ((dense - width_only) + (depth_only - final)) / 2
    total = dense - final
    return {"dense": dense, "depth_only": depth_only, "width_only": width_only, "final": final,
            "saving": total, "depth_saving": depth, "width_saving": width,
            "depth_share": depth / total if total > 0 else 0.0, "width_share": width / total if total > 0 else 0.0}
