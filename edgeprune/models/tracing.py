"""torch-pruning dependency graphs that understand the zoo's parameter-free channel-mapping shortcut."""
from __future__ import annotations

import warnings
from contextlib import contextmanager

import torch
import torch.nn as nn
import torch_pruning as tp

from edgeprune.errors import EdgepruneError
from edgeprune.models.channel_maps import (ChannelRecorder, install_concat_mappings, install_shuffle_mappings,
                                                install_split_mappings)
from edgeprune.models.resnet_cifar import PadShortcut


class GraphError(EdgepruneError):
    """torch-pruning cannot follow the model's channel wiring."""


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


class _ShuffleAwareGraph(tp.DependencyGraph):
    """A DependencyGraph that maps channels through view → transpose → reshape channel shuffles."""

    def _build_dependency(self, module2node):
        super()._build_dependency(module2node)
        install_concat_mappings(module2node, self.recorded.concat)
        self.splits = install_split_mappings(module2node)
        self.shuffles = install_shuffle_mappings(module2node, self.recorded.shuffle)


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter or buffer (CPU for a parameter-free model)."""
    for tensor in list(model.parameters()) + list(model.buffers()):
        return tensor.device
    return torch.device("cpu")


def _where(dg: tp.DependencyGraph) -> str:
    """The op whose index mapping fails, named after the nearest module that feeds it."""
    for node in dg.module2node.values():
        try:
            tp.dependency.index_mapping.update_index_mapping(_OneNode(dg, node))
        except Exception:  # noqa: BLE001 - the first op torch-pruning fails on, whatever the failure
            return f"{node.grad_fn.name() if node.grad_fn is not None else node.module} after {_feeder(dg, node)}"
    return "an unknown op"


class _OneNode:
    """A view of a graph holding only one node, to run torch-pruning's index mapping node by node."""

    def __init__(self, dg, node):
        self._dg, self.module2node = dg, {node.module: node}

    def __getattr__(self, name):
        return getattr(self._dg, name)


def _feeder(dg: tp.DependencyGraph, node) -> str:
    """Name of the closest named module upstream of ``node``."""
    names = {m: n for n, m in dg.model.named_modules()}
    seen, todo = set(), [node]
    while todo:
        cur = todo.pop(0)
        if cur.module in names and names[cur.module]:
            return f"module '{names[cur.module]}'"
        seen.add(cur)
        todo += [n for n in cur.inputs if n not in seen]
    return "the model input"


@contextmanager
def _unfrozen(params):
    """Parameters set to require grad for the duration, then frozen again."""
    for p in params:
        p.requires_grad_(True)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(False)


def dependency_graph(model: nn.Module, example: torch.Tensor) -> tp.DependencyGraph:
    """torch-pruning's DependencyGraph of ``model`` traced on ``example``, with the zoo's custom pruners and
    channel shuffles mapped; GraphError (one line, naming the op) where torch-pruning cannot follow the graph."""
    dg = _ShuffleAwareGraph()
    frozen = [p for p in model.parameters() if not p.requires_grad]  # traced through autograd: unfreeze for it
    with warnings.catch_warnings(), torch.enable_grad(), ChannelRecorder() as recorder, _unfrozen(frozen):
        warnings.simplefilter("ignore")
        dg.recorded = recorder
        try:
            # a tuple: torch-pruning calls model(*example_inputs), which would unpack a batch of one into one
            # unbatched sample (convs accept it; channel-axis ops then act on the wrong axis)
            return dg.build_dependency(model, example_inputs=(example,), verbose=False,
                                       customized_pruners={PadShortcut: PadShortcutPruner()})
        except Exception as exc:  # torch-pruning fails in many ways on graphs it cannot follow
            where = _where(dg) if getattr(dg, "module2node", None) else f"tracing {type(model).__name__}"
            raise GraphError(f"cannot follow the channel wiring of {type(model).__name__} at {where} "
                             f"(torch-pruning: {type(exc).__name__}: {exc}); rewrite that op with standard ones (a channel "
                             "shuffle as x.view(n, g, c // g, h, w).transpose(1, 2).reshape(n, c, h, w))") from exc
