"""Order removable residual blocks by how little they matter (the joint method's layer-pruning ranking)."""
from __future__ import annotations

from edgeprune.structure.blocks import block_members


def rank_blocks(blocks: list[str], sparsity: dict[str, float], mean_gamma: dict[str, float]) -> list[str]:
    """Blocks, least important first: importance is the mean sparsity of the BN layers inside (sparser = less
    important), ties broken by their mean |γ|; a block without scored BN layers ranks last."""
    def key(block: str):
        inside = block_members(sparsity, [block])
        if not inside:
            return (1, 0.0, 0.0)
        return (0, -sum(sparsity[n] for n in inside) / len(inside), sum(mean_gamma[n] for n in inside) / len(inside))

    return sorted(blocks, key=key)
