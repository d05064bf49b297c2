"""Coupled channel groups that run through channel splits and shuffles: a root, and a balanced chunking."""
from __future__ import annotations

from collections import defaultdict

import torch.nn as nn
import torch_pruning as tp
from torch_pruning import _helpers

from edgeprune.models.channel_maps import split_offsets

MEASURED_TYPES = (nn.Conv2d, nn.Linear)


def _out_fn(dg: tp.DependencyGraph, module: nn.Module):
    """The out-channel pruning function torch-pruning uses for ``module`` as a group's root."""
    if isinstance(module, nn.Conv2d) and module.groups == module.out_channels > 1:
        return tp.pruner.function.prune_depthwise_conv_out_channels
    return dg.get_pruner_of_module(module).prune_out_channels


def reached(dg: tp.DependencyGraph, module: nn.Module) -> dict[tuple, set[tuple[int, int]]]:
    """Every (node, pruning fn) the out-channels of ``module`` reach, with all (channel, root channel) pairs.

    torch-pruning's own groups keep one root channel per channel; this keeps them all, which shows when a
    shuffle ties two channels of the root to each other."""
    tp.dependency.index_mapping.update_index_mapping(dg)
    node, fn = dg.module2node[module], _out_fn(dg, module)
    start = [_helpers._HybridIndex(i, i) for i in range(dg.get_out_channels(module))]
    seen: dict[tuple, set] = {(node, fn): {(i.idx, i.root_idx) for i in start}}
    stack = [(node, fn, start)]
    while stack:
        node, fn, idxs = stack.pop()
        for dep in node.dependencies:
            if not dep.is_triggered_by(fn):
                continue
            new = idxs
            for mapping in dep.index_mapping:
                if mapping is not None:
                    new = mapping(new)
            known = seen.setdefault((dep.target, dep.handler), set())
            fresh = [i for i in new if (i.idx, i.root_idx) not in known]
            if fresh:
                known.update((i.idx, i.root_idx) for i in fresh)
                stack.append((dep.target, dep.handler, fresh))
    return seen


def is_one_to_one(dg: tp.DependencyGraph, module: nn.Module) -> bool:
    """Whether no channel of ``module`` is tied to another of its own channels (as a shuffle can do)."""
    node = dg.module2node[module]
    return all(i == r for (target, fn), pairs in reached(dg, module).items()
               if target is node and dg.is_out_channel_pruning_fn(fn) for i, r in pairs)


def full_group(dg: tp.DependencyGraph, module: nn.Module):
    """The coupled group of all out-channels of ``module``."""
    return dg.get_pruning_group(module, _out_fn(dg, module), list(range(dg.get_out_channels(module))))


def one_to_one_root(dg: tp.DependencyGraph, group, names: dict):
    """A conv/linear of ``group`` whose channels map one to one onto the group's units, with its full group; None
    when there is none (every member ties some of its own channels together)."""
    candidates = sorted({item.dep.target.module for item in group
                         if isinstance(item.dep.target.module, MEASURED_TYPES)
                         and dg.is_out_channel_pruning_fn(item.dep.handler)}, key=lambda m: names[m])
    for module in candidates:
        if is_one_to_one(dg, module):
            return module, full_group(dg, module)
    return None, None


def _split_counts(group) -> tuple[list[dict[int, list[int]]], str | None]:
    """For every channel split in ``group``: root channel -> channels it puts in each chunk; or a reason the
    split cannot be pruned consistently (fixed chunk sizes)."""
    splits = []
    for item in group:
        node = item.dep.target
        if node.type != tp.ops.OPTYPE.SPLIT:
            continue
        offsets = split_offsets(node.grad_fn) if node.grad_fn is not None else None
        if offsets and "withsizes" in node.grad_fn.name().lower():
            return [], (f"a channel split with fixed sizes ({[b - a for a, b in zip(offsets, offsets[1:])]}) divides "
                        "these channels; use chunk() so the parts follow the pruned width")
        if not offsets or len({b - a for a, b in zip(offsets, offsets[1:])}) != 1:
            return [], "a channel split into unequal parts divides these channels"
        counts: dict[int, list[int]] = defaultdict(lambda: [0] * (len(offsets) - 1))
        for idx, root in set(zip(item.idxs, item.root_idxs)):
            chunk = next(k for k in range(len(offsets) - 1) if offsets[k] <= idx < offsets[k + 1])
            counts[root][chunk] += 1
        splits.append(counts)
    return splits, None


def balanced_divisor(group, width: int) -> tuple[int, str | None]:
    """The fewest equal chunks of the root's ``width`` channels such that dropping the same positions in every
    chunk drops as many channels from each part of every split (chunk() splits by the pruned width)."""
    splits, reason = _split_counts(group)
    if reason:
        return 1, reason
    if not splits:
        return 1, None
    for d in (d for d in range(1, width) if width % d == 0):
        per = width // d
        if all(_balanced(counts, per, d) for counts in splits):
            return d, None
    return 1, ("a channel split (chunk) and shuffle tie these channels so that no pruning keeps the split parts "
               "equal")


def _balanced(counts: dict[int, list[int]], per: int, d: int) -> bool:
    """Whether removing position p of every chunk (for any p < per) removes equally from each split part."""
    parts = len(next(iter(counts.values()), []))
    for p in range(per):
        totals = [0] * parts
        for c in range(d):
            totals = [a + b for a, b in zip(totals, counts.get(c * per + p, [0] * parts))]
        if len(set(totals)) > 1:
            return False
    return True
