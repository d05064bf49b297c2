"""torch-pruning dependency graphs that understand the zoo's parameter-free channel-mapping shortcut."""
from __future__ import annotations

import warnings

import torch
import torch.nn as nn
import torch_pruning as tp

from edgeprune.models.resnet_cifar import PadShortcut


class PadShortcutPruner(tp.pruner.function.BasePruningFunc):
    """Prunes a PadShortcut's inputs and outputs independently by rewriting its channel map.

    Without it torch-pruning sees the channel pad as element-wise and couples the whole residual stream of
    every stage into one group whose members disagree on width, so no stream channel could be pruned.
    """

    TARGET_MODULES = (PadShortcut,)

    def prune_out_channels(self, layer: PadShortcut, idxs) -> PadShortcut:
        """Drop output channels ``idxs``."""
        drop = set(int(i) for i in idxs)
        keep = [j for j in range(layer.out_channels) if j not in drop]
        layer.set_source(layer.source[keep], layer.in_channels)
        return layer

    def prune_in_channels(self, layer: PadShortcut, idxs) -> PadShortcut:
        """Drop input channels ``idxs``: outputs that copied them become zero, the rest are renumbered."""
        drop = set(int(i) for i in idxs)
        renumber, new = [], 0
        for i in range(layer.in_channels):
            renumber.append(-1 if i in drop else new)
            new += i not in drop
        table = torch.tensor(renumber + [-1], dtype=torch.long)  # index -1 maps to the appended -1
        layer.set_source(table[layer.source.cpu()], new)
        return layer

    def get_out_channels(self, layer: PadShortcut) -> int:
        return layer.out_channels

    def get_in_channels(self, layer: PadShortcut) -> int:
        return layer.in_channels


def dependency_graph(model: nn.Module, example: torch.Tensor) -> tp.DependencyGraph:
    """torch-pruning's DependencyGraph of ``model`` traced on ``example``, with the zoo's custom pruners."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return tp.DependencyGraph().build_dependency(model, example_inputs=example, verbose=False,
                                                     customized_pruners={PadShortcut: PadShortcutPruner()})
