"""BatchNorm scaling factors γ: which BN layers index each prunable group's channels, and their values."""
from __future__ import annotations

import numpy as np
import torch.nn as nn

from edgeprune.models.layer_space import LayerSpace
from edgeprune.structure.channel_slices import group_slices


def batchnorms(model: nn.Module) -> dict[str, nn.modules.batchnorm._BatchNorm]:
    """Every affine BatchNorm layer of ``model`` by name, in module order."""
    return {n: m for n, m in model.named_modules()
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.affine}


def group_bns(model: nn.Module, space: LayerSpace) -> dict[str, list[str]]:
    """For every prunable group, the BN layers whose γ index its channels (empty for a group without BN)."""
    names = {id(bn.weight): n for n, bn in batchnorms(model).items()}
    return {g: list(dict.fromkeys(names[id(p)] for p, _ in slices if id(p) in names))
            for g, slices in group_slices(model, space).items()}


def gammas(model: nn.Module, names) -> dict[str, np.ndarray]:
    """|γ| of the named BN layers as float64 arrays."""
    bns = batchnorms(model)
    return {n: bns[n].weight.detach().abs().double().cpu().numpy() for n in names}
