"""Channel maps torch-pruning lacks: channel shuffles, which part of a split each consumer reads, concat sizes."""
from __future__ import annotations

import torch
import torch_pruning as tp
from torch.overrides import TorchFunctionMode
from torch_pruning import _helpers

PASS_THROUGH = ("clonebackward", "contiguous")  # ops a shuffle may have between its transpose and its reshape


class ShuffleMapping:
    """Index map across a shuffle of ``groups`` × ``per`` channels that couples each shuffled unit as a whole.

    Channel ``k*per + j`` moves to ``j*groups + k``. The shuffle's reshape needs every group to keep the same
    positions, so an index on either side maps to the whole unit ``j`` on the other side.
    """

    def __init__(self, groups: int, per: int, forward: bool):
        self.groups, self.per, self.forward = groups, per, forward

    def __call__(self, idxs):
        g, m = self.groups, self.per
        if self.forward:
            units = sorted({(i.idx % m, i.root_idx) for i in idxs})
            return [_helpers._HybridIndex(j * g + k, r) for j, r in units for k in range(g)]
        units = sorted({(i.idx // g, i.root_idx) for i in idxs})
        return [_helpers._HybridIndex(k * m + j, r) for j, r in units for k in range(g)]


def _name(node) -> str:
    grad_fn = node.grad_fn
    return grad_fn.name().lower() if grad_fn is not None and hasattr(grad_fn, "name") else ""


def _sizes(node):
    return _sizes_of(node.grad_fn)


def _is_swap_1_2(node) -> bool:
    """A transpose of dims 1 and 2 (or the matching permute) of a 5-D tensor."""
    grad_fn, name = node.grad_fn, _name(node)
    if name.startswith("transposebackward"):
        return {getattr(grad_fn, "_saved_dim0", None), getattr(grad_fn, "_saved_dim1", None)} in ({1, 2}, {-4, -3})
    if name.startswith("permutebackward"):
        return tuple(getattr(grad_fn, "_saved_dims", ())) == (0, 2, 1, 3, 4)
    return False


def _single_output(node):
    return node.outputs[0] if len(node.outputs) == 1 else None


def find_shuffles(module2node) -> list[tuple]:
    """(view, transpose, reshape-back node, groups, channels per group) of every view → transpose → reshape
    channel shuffle."""
    found = []
    for node in module2node.values():
        if node.type != tp.ops.OPTYPE.RESHAPE or len(_sizes(node)) != 4:
            continue
        swap = _single_output(node)
        if swap is None or not _is_swap_1_2(swap):
            continue
        back = _single_output(swap)
        while back is not None and back.type != tp.ops.OPTYPE.RESHAPE and any(p in _name(back) for p in PASS_THROUGH):
            back = _single_output(back)
        if back is None or back.type != tp.ops.OPTYPE.RESHAPE or len(_sizes(back)) != 5:
            continue
        channels = _sizes(node)[1]
        per, groups = _sizes(back)[1], _sizes(back)[2]
        if per * groups == channels and groups > 1:
            found.append((node, swap, back, int(groups), int(per)))
    return found


def install_shuffle_mappings(module2node, channels: dict) -> list[tuple]:
    """Give every channel shuffle in the graph its channel map; returns the shuffles found as (their nodes,
    groups, channels per group).

    torch-pruning reads a view → transpose → reshape shuffle's reshapes as flattens (and divides by zero on a split
    stream); as plain element-wise ops they pass indices through, and the transpose carries the permutation. A
    channel-shuffle op (``nn.ChannelShuffle``) carries it on its input edge; ``channels``: its width by grad_fn.
    """
    shuffles = []
    for view, swap, back, groups, per in find_shuffles(module2node):
        view.type = back.type = tp.ops.OPTYPE.ELEMENTWISE
        _map_edge(view, swap, groups, per)
        shuffles.append(((view, swap, back), groups, per))
    for node in module2node.values():
        width = channels.get(node.grad_fn)
        groups = getattr(node.grad_fn, "_saved_groups", None)
        if width is None or not groups or len(node.inputs) != 1 or width % groups:
            continue
        _map_edge(node.inputs[0], node, int(groups), width // int(groups))
        shuffles.append(((node,), int(groups), width // int(groups)))
    return shuffles


def _map_edge(before, after, groups: int, per: int) -> None:
    """Put the shuffle's map on the edge ``before`` → ``after`` (both ways), composed after (forward) or before
    (backward) any map already there (a split part's)."""
    for dep in before.dependencies:
        if dep.target is after:
            dep.index_mapping[0 if dep.index_mapping[0] is None else 1] = ShuffleMapping(groups, per, forward=True)
    for dep in after.dependencies:
        if dep.target is before:
            if dep.index_mapping[0] is not None:
                dep.index_mapping[1] = dep.index_mapping[0]
            dep.index_mapping[0] = ShuffleMapping(groups, per, forward=False)


class ChannelRecorder(TorchFunctionMode):
    """Records, by grad_fn, the part sizes of every channel-axis ``torch.cat`` of a traced forward and the channel
    count of every channel-shuffle op (autograd keeps neither)."""

    def __init__(self):
        super().__init__()
        self.concat: dict = {}
        self.shuffle: dict = {}
        self.widths: dict = {}  # (input channels, output channels) of every op on a 2-D+ tensor

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if not isinstance(out, torch.Tensor) or out.grad_fn is None or out.dim() < 2:
            return out
        if args and isinstance(args[0], torch.Tensor) and args[0].dim() >= 2:
            self.widths.setdefault(out.grad_fn, (int(args[0].shape[1]), int(out.shape[1])))
        if func is torch.cat:
            tensors = args[0] if args else kwargs["tensors"]
            dim = args[1] if len(args) > 1 else (kwargs or {}).get("dim", 0)
            if dim in (1, 1 - out.dim()):
                self.concat[out.grad_fn] = [int(t.shape[1]) for t in tensors]
        elif out.grad_fn.name().lower().startswith("channelshufflebackward"):
            self.shuffle[out.grad_fn] = int(out.shape[1])
        return out


class LiveConcatMapping:
    """torch-pruning's concat index map for input ``part``, reading the op's current sizes (pruning updates them)."""

    def __init__(self, op, part: int, reverse: bool):
        self.op, self.part, self.reverse = op, part, reverse

    def __call__(self, idxs):
        start = sum(self.op.concat_sizes[:self.part])
        end = start + self.op.concat_sizes[self.part]
        if self.reverse:
            return [_helpers._HybridIndex(i.idx - start, i.root_idx) for i in idxs if start <= i.idx < end]
        return [_helpers._HybridIndex(i.idx + start, i.root_idx) for i in idxs]


def install_concat_mappings(module2node, sizes: dict) -> None:
    """Concat index maps from the recorded sizes: torch-pruning infers them from the graph and gets them wrong
    (or gives up) when a concat's output reaches a channel split whose part feeds another concat."""
    for node in module2node.values():
        recorded = sizes.get(node.grad_fn)
        if node.type != tp.ops.OPTYPE.CONCAT or recorded is None or len(recorded) != len(node.inputs):
            continue
        node.module.concat_sizes = list(recorded)
        node.enable_index_mapping = False  # keep torch-pruning's own update from replacing these maps
        for part, in_node in enumerate(node.inputs):
            for dep in node.dependencies:
                if dep.target is in_node:
                    dep.index_mapping[1] = LiveConcatMapping(node.module, part, reverse=True)
            for dep in in_node.dependencies:
                if dep.target is node:
                    dep.index_mapping[1] = LiveConcatMapping(node.module, part, reverse=False)


def split_offsets(grad_fn) -> list[int] | None:
    """Channel offsets of the parts of a channel-axis split, from its grad_fn; None for another axis."""
    sizes = _sizes_of(grad_fn)
    dim = getattr(grad_fn, "_saved_dim", None)
    if len(sizes) < 2 or dim not in (1, 1 - len(sizes)):
        return None
    if hasattr(grad_fn, "_saved_split_sizes"):
        parts = [int(p) for p in grad_fn._saved_split_sizes]
    else:
        step = int(grad_fn._saved_split_size)
        parts = [min(step, int(sizes[1]) - i) for i in range(0, int(sizes[1]), step)]
    return [sum(parts[:k]) for k in range(len(parts) + 1)]


def _sizes_of(grad_fn) -> tuple:
    return tuple(getattr(grad_fn, "_saved_self_sym_sizes", None) or getattr(grad_fn, "_saved_self_sizes", None)
                 or ())


def install_split_mappings(module2node) -> list:
    """Split index maps by the part each consumer reads (torch-pruning numbers a split's parts in the order it
    finds the consumers, which need not be the parts' order); returns the split nodes mapped."""
    mapped = []
    for node in module2node.values():
        if node.type != tp.ops.OPTYPE.SPLIT or node.grad_fn is None:
            continue
        offsets = split_offsets(node.grad_fn)
        parts = {}
        for out in node.outputs:
            nrs = {nr for f, nr in getattr(out.grad_fn, "next_functions", ()) if f is node.grad_fn}
            parts[out] = nrs.pop() if len(nrs) == 1 else None
        if offsets is None or None in parts.values():
            continue
        node.module.offsets = offsets
        node.module.split_sizes = [b - a for a, b in zip(offsets, offsets[1:])]
        node.enable_index_mapping = False  # keep torch-pruning's own update from replacing these maps
        mapped.append(node)
        for out, part in parts.items():
            span = offsets[part:part + 2]
            for dep in node.dependencies:
                if dep.target is out:
                    dep.index_mapping[0] = SplitMapping(span, into_part=True)
            for dep in out.dependencies:
                if dep.target is node:
                    dep.index_mapping[0] = SplitMapping(span, into_part=False)
    return mapped


class SplitMapping:
    """Indices of a split's input to those of one part (``into_part``) or back."""

    def __init__(self, span: list[int], into_part: bool):
        self.start, self.end, self.into_part = span[0], span[1], into_part

    def __call__(self, idxs):
        if self.into_part:
            return [_helpers._HybridIndex(i.idx - self.start, i.root_idx) for i in idxs
                    if self.start <= i.idx < self.end]
        return [_helpers._HybridIndex(i.idx + self.start, i.root_idx) for i in idxs]
