"""Prunable layers of a model and the channel groups that must be pruned together."""
from __future__ import annotations

import hashlib
import json
import math

from dataclasses import asdict, dataclass, field

import torch
import torch.nn as nn
import torch_pruning as tp

from edgeprune.models.coupling import balanced_divisor, is_one_to_one, one_to_one_root
from edgeprune.models.tracing import dependency_graph, model_device

MEASURED_TYPES = (nn.Conv2d, nn.Linear)


@dataclass(frozen=True)
class LayerSignature:
    """Everything a single-layer micro-benchmark needs except the channel counts."""

    op: str  # "conv", "dwconv" or "linear"
    kernel: tuple[int, int] = (1, 1)
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)
    in_hw: tuple[int, int] = (1, 1)
    bias: bool = False
    bn: bool = False
    act: str | None = None  # "relu", "relu6" or None
    groups: int = 1  # a grouped (not depthwise) conv: channels split into this many independent groups

    def key(self) -> str:
        """Stable text key, used in tables and caches."""
        if self.op == "linear":
            return f"linear|bias={int(self.bias)}|act={self.act}"
        k, s, p, d, hw = self.kernel, self.stride, self.padding, self.dilation, self.in_hw
        grouped = f"|g={self.groups}" if self.groups > 1 else ""
        return (f"{self.op}|k={k[0]}x{k[1]}|s={s[0]}x{s[1]}|p={p[0]}x{p[1]}|d={d[0]}x{d[1]}"
                f"|in={hw[0]}x{hw[1]}|bias={int(self.bias)}|bn={int(self.bn)}|act={self.act}{grouped}")

    @classmethod
    def from_dict(cls, d: dict) -> "LayerSignature":
        """Inverse of ``dataclasses.asdict``."""
        tup = {k: tuple(v) for k, v in d.items() if isinstance(v, list)}
        return cls(**{**d, **tup})


@dataclass
class ChannelGroup:
    """Channels coupled by the graph: pruning one channel removes it from every member."""

    name: str
    width: int
    members: list[str] = field(default_factory=list)  # "module:in" / "module:out"
    prunable: bool = True
    reason: str | None = None
    # A grouped conv among the members: the width is split into this many equal chunks, and every chunk must
    # keep the same channel positions (torch-pruning slices a grouped conv's inputs by one pattern).
    divisor: int = 1


@dataclass
class Layer:
    """One conv/linear layer with its dense widths and the groups its widths belong to."""

    name: str
    signature: LayerSignature
    c_in: int
    c_out: int
    in_group: str | None  # None: width fixed (model input, or a non-prunable group)
    out_group: str | None

    def dims(self, widths: dict[str, int]) -> tuple[int, int]:
        """(c_in, c_out) of this layer when the prunable groups take ``widths``."""
        c_in = widths.get(self.in_group, self.c_in) if self.in_group else self.c_in
        c_out = widths.get(self.out_group, self.c_out) if self.out_group else self.c_out
        if self.signature.op == "dwconv":
            c_in = c_out = widths.get(self.out_group, c_out) if self.out_group else c_out
        return c_in, c_out


@dataclass
class LayerSpace:
    """The layers and channel groups of one model at one input shape."""

    input_shape: tuple[int, ...]
    layers: list[Layer]
    groups: list[ChannelGroup]

    @property
    def prunable_groups(self) -> list[ChannelGroup]:
        return [g for g in self.groups if g.prunable]

    def dense_widths(self) -> dict[str, int]:
        """Width of every prunable group in the unpruned model."""
        return {g.name: g.width for g in self.prunable_groups}

    def divisors(self) -> dict[str, int]:
        """Prunable groups split into equal chunks by a grouped conv (see ``ChannelGroup.divisor``)."""
        return {g.name: g.divisor for g in self.prunable_groups if g.divisor > 1}

    def signatures(self) -> dict[str, LayerSignature]:
        """Distinct layer signatures, by key."""
        return {layer.signature.key(): layer.signature for layer in self.layers}

    def to_dict(self) -> dict:
        return {"input_shape": list(self.input_shape),
                "layers": [{**asdict(l), "signature_key": l.signature.key()} for l in self.layers],
                "groups": [asdict(g) for g in self.groups]}


def architecture_hash(space: LayerSpace) -> str:
    """Identity of a model's structure (layers, widths, groups, input shape)."""
    text = json.dumps(space.to_dict(), sort_keys=True, separators=(",", ":"))  # the latency tables' canonical JSON
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _pair(v) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _input_sizes(model: nn.Module, example: torch.Tensor) -> dict[nn.Module, tuple[int, ...]]:
    """Input tensor shape of every conv/linear layer, from one forward pass."""
    sizes: dict[nn.Module, tuple[int, ...]] = {}

    def record(mod, inp, out):
        sizes.setdefault(mod, tuple(inp[0].shape))

    hooks = [m.register_forward_hook(record) for m in model.modules() if isinstance(m, MEASURED_TYPES)]
    try:
        with torch.no_grad():
            model(example)
    finally:
        for h in hooks:
            h.remove()
    return sizes


def _follow_ups(dg: tp.DependencyGraph, module: nn.Module) -> tuple[bool, str | None]:
    """Whether a layer's output goes through BatchNorm and which activation follows (as runtimes fuse them)."""
    bn, act = False, None
    node = dg.module2node.get(module)
    for _ in range(3):
        if node is None or len(node.outputs) != 1:
            break
        node = node.outputs[0]
        if isinstance(node.module, nn.modules.batchnorm._BatchNorm):
            bn = True
            continue
        text = str(node.module) + str(getattr(node, "grad_fn", ""))
        if "Relu" in text or isinstance(node.module, nn.ReLU):
            act = "relu"
        elif "Hardtanh" in text or isinstance(node.module, nn.ReLU6):
            act = "relu6"
        break
    return bn, act


def _keeps_channel_counts(group, widths_seen: dict, mapped) -> tuple[bool, str | None]:
    """Ops that torch-pruning passes channels straight through must keep the channel count (a channel pad, a
    sum over channels, an unmapped reshape of the channel axis do not)."""
    for dep, _ in group:
        node = dep.target
        if node.type != tp.ops.OPTYPE.ELEMENTWISE or node.module in mapped or node.grad_fn not in widths_seen:
            continue
        c_in, c_out = widths_seen[node.grad_fn]
        if c_in != c_out:
            return False, (f"{node.grad_fn.name()} changes the channel count ({c_in} → {c_out}); pruning cannot map "
                           "channels through it")
    return True, None


def _group_is_consistent(group, dg, same_width: bool = True) -> tuple[bool, str | None]:
    """A group whose members disagree on channel count (e.g. joined by a channel pad) cannot be pruned safely.

    Every producer must be covered whole; a consumer may read the group as part of its input (after a concat).
    ``same_width=False``: members may differ (a shuffle ties several channels of one member to one root channel).
    """
    sizes = set()
    for dep, idxs in group:
        mod = dep.target.module
        if isinstance(mod, MEASURED_TYPES + (nn.modules.batchnorm._BatchNorm,)):
            is_out = dg.is_out_channel_pruning_fn(dep.handler)
            width = dg.get_out_channels(mod) if is_out else dg.get_in_channels(mod)
            covered = len(set(idxs))
            reads_part = isinstance(mod, MEASURED_TYPES) and not is_out and width is not None and covered < width
            if width is not None and width != covered and not reads_part:
                return False, (f"{type(mod).__name__} has {width} channels but the coupled set has "
                               f"{len(idxs)} (parameter-free channel padding or concat joins it)")
            sizes.add(len(set(idxs)) if same_width else 0)
    return len(sizes) <= 1, None if len(sizes) <= 1 else "members disagree on width"


def build_layer_space(model: nn.Module, input_shape: tuple[int, ...]) -> LayerSpace:
    """List every conv/linear layer with its signature, widths and coupled channel groups (via torch-pruning)."""
    model = model.eval()
    example = torch.randn(*input_shape, device=model_device(model))
    names = {m: n for n, m in model.named_modules()}
    in_sizes = _input_sizes(model, example)
    dg = dependency_graph(model, example)

    output_layers = _output_layers(model, example, names)
    mapped = {node.module for nodes, _, _ in getattr(dg, "shuffles", []) for node in nodes}
    recorded = getattr(dg, "recorded", None)
    widths_seen = recorded.widths if recorded else {}
    groups: list[ChannelGroup] = []
    member_group: dict[str, str] = {}
    for group in dg.get_all_groups(root_module_types=MEASURED_TYPES):
        root = group[0].dep.target.module
        shuffled = any(dep.target.module in mapped for dep, _ in group)
        tied = None
        if shuffled and not is_one_to_one(dg, root):
            new_root, new_group = one_to_one_root(dg, group, names)
            if new_root is None:
                tied = ("a channel shuffle ties channels of each layer here to other channels of the same layer, "
                        "in sets no pruning can keep aligned")
            else:
                root, group = new_root, new_group
        gname = f"{names[root]}:out"
        members = []
        for dep, _ in group:
            if isinstance(dep.target.module, MEASURED_TYPES):
                side = "out" if dg.is_out_channel_pruning_fn(dep.handler) else "in"
                members.append(f"{names[dep.target.module]}:{side}")
        members = sorted(set(members))
        width = len(group[0].idxs)
        ok, reason = _keeps_channel_counts(group, widths_seen, mapped)
        if ok:
            ok, reason = _group_is_consistent(group, dg, same_width=not shuffled)
        if ok and tied:
            ok, reason = False, tied
        if ok and _permutes_channels(group, mapped):
            ok, reason = False, ("a channel shuffle (transpose/permute of the channel axis) reorders these channels; "
                                 "pruning through it would mis-align them")
        feeds = sorted({output_layers[m[:-4]] for m in members if m.endswith(":out") and m[:-4] in output_layers})
        if ok and feeds:
            ok, reason = False, "feeds the model " + " and ".join(feeds)
        divisor = _chunking(group, width)
        if ok and shuffled and divisor > 1:
            ok, reason = False, ("a channel shuffle reorders the channels of a grouped conv; pruning through it "
                                 "would mis-align the conv groups")
        if ok:
            split_divisor, reason = balanced_divisor(group, width)
            ok, divisor = reason is None, math.lcm(divisor, split_divisor)
        if ok and divisor > 1 and width % divisor:
            ok, reason = False, f"width {width} does not split into {divisor} equal chunks (conv groups or splits)"
        groups.append(ChannelGroup(gname, width, members, ok, reason, divisor))
        for m in members:
            member_group.setdefault(m, gname)

    prunable = {g.name for g in groups if g.prunable}
    layers = []
    for mod, shape in in_sizes.items():
        name = names[mod]
        bn, act = _follow_ups(dg, mod)
        if isinstance(mod, nn.Linear):
            sig = LayerSignature("linear", bias=mod.bias is not None, act=act)
            c_in, c_out = mod.in_features, mod.out_features
        else:
            depthwise = mod.groups > 1 and mod.groups == mod.in_channels == mod.out_channels
            sig = LayerSignature("dwconv" if depthwise else "conv", _pair(mod.kernel_size), _pair(mod.stride),
                                 _pair(mod.padding), _pair(mod.dilation), (shape[2], shape[3]),
                                 mod.bias is not None, bn, act, 1 if depthwise else mod.groups)
            c_in, c_out = mod.in_channels, mod.out_channels
        in_g = member_group.get(f"{name}:in")
        out_g = member_group.get(f"{name}:out")
        if sig.op == "dwconv":
            in_g = out_g = out_g or in_g
        layers.append(Layer(name, sig, c_in, c_out,
                            in_g if in_g in prunable else None, out_g if out_g in prunable else None))
    return LayerSpace(tuple(input_shape), layers, groups)


PERMUTING_OPS = ("transpose", "permute", "channelshuffle", "pixelshuffle", "pixelunshuffle")


def _permutes_channels(group, mapped=frozenset()) -> bool:
    """Whether the coupled set passes through an op that reorders channels and has no channel map (``mapped``:
    the shuffles whose permutation the graph carries); torch-pruning treats such an op as identity."""
    for dep, _ in group:
        text = str(dep.target.module).lower()
        if dep.target.module in mapped or isinstance(dep.target.module, MEASURED_TYPES):
            continue
        if any(op in text for op in PERMUTING_OPS):
            return True
    return False


def _chunking(group, width: int) -> int:
    """How many equal chunks a group's channels form because a grouped (non-depthwise) conv is among them."""
    divisor = 1
    for dep, _ in group:
        mod = dep.target.module
        if isinstance(mod, nn.Conv2d) and mod.groups > 1 and not mod.groups == mod.in_channels == mod.out_channels:
            divisor = math.lcm(divisor, mod.groups)
    return divisor


def output_tensors(out, label: str = "output") -> list[tuple[str, torch.Tensor]]:
    """Every tensor of a model's output (a tensor, or tuples, lists and dicts of them), each with a label."""
    if isinstance(out, torch.Tensor):
        return [(label, out)]
    if isinstance(out, dict):
        return [t for k, v in out.items() for t in output_tensors(v, f"output {k!r}")]
    if isinstance(out, (tuple, list)):
        return [t for i, v in enumerate(out) for t in output_tensors(v, f"output {i}" if label == "output"
                                                                     else f"{label}[{i}]")]
    return []


def _output_layers(model: nn.Module, example: torch.Tensor, names: dict) -> dict[str, str]:
    """Layers whose out-channels reach a model output with no conv/linear in between (they are the output's
    channels: never pruned), each with the output it feeds; found by walking back the autograd graph."""
    producers: dict = {}

    def record(mod, inp, out):
        if isinstance(out, torch.Tensor) and out.grad_fn is not None:
            producers[out.grad_fn] = mod

    hooks = [m.register_forward_hook(record) for m in model.modules() if isinstance(m, MEASURED_TYPES)]
    try:
        with torch.enable_grad():
            out = model(example.detach().requires_grad_(True))  # a graph even when the weights are frozen
    finally:
        for h in hooks:
            h.remove()
    found: dict[str, str] = {}
    for label, tensor in output_tensors(out):
        stack, seen = [tensor.grad_fn], set()
        while stack:
            fn = stack.pop()
            if fn is None or fn in seen:
                continue
            seen.add(fn)
            if fn in producers:
                found.setdefault(names[producers[fn]], label)
                continue
            stack += [f for f, _ in getattr(fn, "next_functions", ())]
    return found
