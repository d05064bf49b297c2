"""Residual blocks that can be replaced by their identity shortcut, their removal, and channel+block pruning."""
from __future__ import annotations

from collections.abc import Iterable

import torch.nn as nn

from edgeprune.models.layer_space import LayerSpace
from edgeprune.models.mobilenetv2 import InvertedResidual
from edgeprune.models.resnet_cifar import BasicBlock
from edgeprune.structure.physical import apply_kept


def is_removable(module: nn.Module) -> bool:
    """A residual block whose output has its input's shape (stride 1, equal in/out width): identity can stand in."""
    if isinstance(module, BasicBlock):
        return module.conv1.stride == (1, 1) and module.conv1.in_channels == module.conv2.out_channels
    return isinstance(module, InvertedResidual) and module.use_residual


def removable_blocks(model: nn.Module) -> list[str]:
    """Names of the removable residual blocks of ``model``, in module (forward) order."""
    return [n for n, m in model.named_modules() if is_removable(m)]


def block_members(names: Iterable[str], blocks: Iterable[str]) -> list[str]:
    """Those of ``names`` (module names) that lie inside one of ``blocks``."""
    prefixes = tuple(b + "." for b in blocks)
    return [n for n in names if prefixes and n.startswith(prefixes)]


def block_layers(space: LayerSpace, blocks: Iterable[str]) -> list[str]:
    """The conv/linear layers of ``space`` that removing ``blocks`` deletes."""
    return block_members((layer.name for layer in space.layers), blocks)


def remove_blocks(model: nn.Module, blocks: Iterable[str]) -> nn.Module:
    """Replace each named residual block of ``model`` (in place) by ``nn.Identity``; returns ``model``."""
    modules = dict(model.named_modules())
    for name in blocks:
        if not is_removable(modules.get(name, nn.Identity())):
            found = type(modules[name]).__name__ if name in modules else "no module"
            raise ValueError(f"cannot remove block {name!r} ({found}): only residual blocks with stride 1 and equal "
                             "input/output width can be replaced by their identity shortcut")
        parent, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent), child, nn.Identity())
    return model


def apply_pruning(model: nn.Module, space: LayerSpace, kept: dict[str, Iterable[int]],
                  blocks: Iterable[str] = ()) -> nn.Module:
    """A copy of ``model`` with channels removed first (``kept`` indexes the model as given, like ``apply_kept``),
    then ``blocks`` replaced by their identity shortcut; blocks keep their in = out width, so this stays valid."""
    return remove_blocks(apply_kept(model, space, kept), blocks)
