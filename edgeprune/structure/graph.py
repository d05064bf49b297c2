"""torch-pruning DependencyGraph helpers shared by importance scoring and physical pruning."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch_pruning as tp

from edgeprune.models.layer_space import LayerSpace
from edgeprune.models.tracing import dependency_graph, model_device


def build_graph(model: nn.Module, input_shape: tuple[int, ...]) -> tp.DependencyGraph:
    """Trace ``model`` in eval mode (BN statistics untouched) and restore its train/eval mode."""
    was_training = model.training
    model.eval()
    try:
        return dependency_graph(model, torch.zeros(*input_shape, device=model_device(model)))
    finally:
        model.train(was_training)


def group_root(model: nn.Module, group_name: str) -> nn.Module:
    """The module whose out-channels define group ``group_name`` ("module:out")."""
    module_name, sep, side = group_name.rpartition(":")
    modules = dict(model.named_modules())
    if not sep or side != "out" or module_name not in modules:
        raise ValueError(f"channel group {group_name!r} names no module of this model (expected 'module:out')")
    return modules[module_name]


def prunable_names(space: LayerSpace, names) -> None:
    """Raise ValueError when ``names`` holds a group that is unknown or fixed in ``space``."""
    prunable = {g.name for g in space.prunable_groups}
    fixed = {g.name: g.reason for g in space.groups if not g.prunable}
    for name in names:
        if name in fixed:
            raise ValueError(f"channel group {name} is fixed and cannot be pruned: {fixed[name]}")
        if name not in prunable:
            raise ValueError(f"unknown channel group {name!r}; prunable: {sorted(prunable)}")


def out_group(dg: tp.DependencyGraph, root: nn.Module, idxs: list[int]):
    """The coupled pruning group removing out-channels ``idxs`` of ``root``."""
    return dg.get_pruning_group(root, dg.get_pruner_of_module(root).prune_out_channels, idxs=idxs)


def current_width(dg: tp.DependencyGraph, root: nn.Module) -> int:
    """Out-channels ``root`` has now (after any earlier pruning)."""
    return int(dg.get_out_channels(root))
