"""Any outputs and any wiring: multi-head and dict outputs, channel split + shuffle networks, clear graph errors."""
import copy
import json
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from edgeprune.formats import to_onnx_bytes
from edgeprune.export.onnx_parity import check_parity
from edgeprune.models.layer_space import build_layer_space
from edgeprune.models.tracing import GraphError
from edgeprune.structure.graph import build_graph, group_root, out_group
from edgeprune.structure.physical import apply_kept, leading_channels
from conftest import run_cli
from shufflenet_style import channel_shuffle, flat_shuffle, op_shuffle, shufflenet_style

SHAPE = (1, 3, 32, 32)
STREAM_1, STREAM_2 = "stages.0.branch1.1.0:out", "stages.3.branch1.1.0:out"  # the two stages' split/shuffle streams


def masked(net: nn.Module, space, kept: dict) -> nn.Module:
    """A copy of ``net`` whose pruned channels are zeroed (conv filters and BN affine) instead of removed."""
    ref = copy.deepcopy(net)
    dg = build_graph(ref, space.input_shape)
    with torch.no_grad():
        for name, keep in kept.items():
            root = group_root(ref, name)
            removed = [i for i in range(dg.get_out_channels(root)) if i not in keep]
            for dep, idxs in out_group(dg, root, removed):
                layer = dep.target.module
                if dg.is_out_channel_pruning_fn(dep.handler) and isinstance(layer, (nn.Conv2d, nn.BatchNorm2d)):
                    layer.weight[idxs] = 0
                    if layer.bias is not None:
                        layer.bias[idxs] = 0
    return ref


@pytest.fixture(scope="module")
def space():
    return build_layer_space(shufflenet_style(), SHAPE)


def test_split_shuffle_network_is_analysed_with_its_streams_prunable(space):
    groups = {g.name: g for g in space.groups}
    # each branch's internal convs (1x1 -> depthwise) form their own prunable group
    inner = [g for g in space.prunable_groups if g.name.endswith("branch2.1.0:out")]
    assert len(inner) == 6 and all(g.divisor == 1 for g in inner)
    # the split/shuffled stream of each stage is one group: both branches of the stride-2 block, every
    # stride-1 block's output conv and every reader of the stream, pruned in a balanced pattern
    stream = groups[STREAM_1]
    assert stream.prunable and stream.divisor == 4 and stream.width == 8
    assert {"stages.0.branch2.2.0:out", "stages.1.branch2.2.0:out", "stages.2.branch2.2.0:out",
            "stages.1.branch2.0.0:in", "stages.2.branch2.0.0:in", "stages.3.branch2.0.0:in"} <= set(stream.members)
    assert groups[STREAM_2].prunable and "head.0:in" in groups[STREAM_2].members
    assert groups["fc:out"].reason == "feeds the model output"
    assert all(l.out_group or l.name == "fc" for l in space.layers)  # every layer but the classifier can shrink


@pytest.mark.parametrize("shuffle", [channel_shuffle, op_shuffle], ids=["view-transpose", "op"])
def test_pruned_split_shuffle_network_equals_masking_the_dense_one(shuffle):
    net = shufflenet_style(shuffle=shuffle)
    space = build_layer_space(net, SHAPE)
    kept = {STREAM_1: [1, 3, 5, 7], STREAM_2: leading_channels(16, 12, 4),
            "stages.1.branch2.1.0:out": [0, 2, 5], "stages.4.branch2.1.0:out": list(range(0, 16, 2)),
            "stem.0:out": [0, 1, 2, 3, 6], "head.0:out": list(range(40))}
    pruned = apply_kept(net, space, kept)
    assert pruned.stages[0].branch1[1][0].out_channels == 4 and pruned.stages[1].branch2[0][0].in_channels == 4
    assert pruned.stages[3].branch1[1][0].out_channels == 12 and pruned.head[0].in_channels == 24
    x = torch.randn(4, *SHAPE[1:])
    with torch.no_grad():
        torch.testing.assert_close(pruned(x), masked(net, space, kept)(x))
    if shuffle is channel_shuffle:  # torch's ONNX exporter has no aten::channel_shuffle (opset 17)
        report = check_parity(pruned, to_onnx_bytes(pruned, SHAPE), x)
        assert report.passed and report.max_abs_diff < 1e-4
    again = {g.name: g for g in build_layer_space(pruned, SHAPE).groups}  # the pruned net analyses again
    assert again[STREAM_1].width == 4 and not again[STREAM_1].prunable  # one unit per split part is left
    assert again[STREAM_2].width == 12 and again[STREAM_2].prunable and again[STREAM_2].divisor == 4


def test_stream_kept_sets_that_would_unbalance_the_split_are_refused(space):
    with pytest.raises(ValueError, match="same channel positions"):
        apply_kept(shufflenet_style(), space, {STREAM_1: [0, 1, 2, 3]})


def test_pruning_methods_run_on_the_split_shuffle_network(space):
    import random
    from types import SimpleNamespace

    from edgeprune.costmodel.macs import network_macs
    from edgeprune.costmodel.model import CostModel
    from edgeprune.measure.variants import random_widths
    from edgeprune.prune.ecc import EccSettings, prune_ecc
    from edgeprune.prune.global_magnitude import prune_global
    from edgeprune.prune.uniform import prune_uniform

    net = shufflenet_style()
    cost = lambda w: float(network_macs(space, w))  # noqa: E731
    rng = random.Random(0)
    widths = [random_widths(space, rng, 0.1) for _ in range(30)] + [space.dense_widths()]
    cost_model = CostModel(source="network").fit(space, network_widths=widths, network_y=[cost(w) for w in widths])
    torch.manual_seed(0)
    data = SimpleNamespace(train=[(torch.randn(8, *SHAPE[1:]), torch.randint(0, 10, (8,))) for _ in range(3)])
    results = [prune(net, space, cost, 0.6 * cost({})) for prune in (prune_uniform, prune_global)]
    results.append(prune_ecc(copy.deepcopy(net).train(), space, cost_model, 0.6 * cost({}), data,
                             EccSettings(iters=3, steps=2)))
    for result in results:
        assert result.widths[STREAM_1] % 4 == 0 and result.widths[STREAM_2] % 4 == 0
        assert (result.predicted_cost if result.method == "ecc" else cost(result.widths)) <= 0.6 * cost({})
        pruned = apply_kept(net, space, result.kept)
        assert pruned(torch.randn(2, *SHAPE[1:])).shape == (2, 10)


class TwoHeads(nn.Module):
    """A detection-style model: a shared body, a box head and a class head, returned as a tuple."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                  nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU())
        self.box = nn.Conv2d(16, 4, 1)
        self.cls = nn.Conv2d(16, 5, 1)

    def forward(self, x):
        f = self.body(x)
        return self.box(f).flatten(2).transpose(1, 2), self.cls(f)


class DictHeads(TwoHeads):
    def forward(self, x):
        f = self.body(x)
        return {"boxes": self.box(f), "logits": self.cls(f).mean((2, 3))}


@pytest.mark.parametrize("model, labels", [(TwoHeads, ("output 0", "output 1")),
                                           (DictHeads, ("output 'boxes'", "output 'logits'"))])
def test_every_layer_feeding_any_output_is_held_fixed(model, labels):
    torch.manual_seed(0)
    net = model().eval()
    space = build_layer_space(net, (1, 3, 8, 8))
    groups = {g.name: g for g in space.groups}
    assert (groups["box:out"].prunable, groups["box:out"].reason) == (False, f"feeds the model {labels[0]}")
    assert (groups["cls:out"].prunable, groups["cls:out"].reason) == (False, f"feeds the model {labels[1]}")
    assert {g.name for g in space.prunable_groups} == {"body.0:out", "body.3:out"}
    with pytest.raises(ValueError, match="fixed and cannot be pruned: feeds the model"):
        apply_kept(net, space, {"box:out": [0]})
    pruned = apply_kept(net, space, {"body.3:out": list(range(6))})
    x = torch.randn(2, 3, 8, 8)
    out, ref = pruned(x), masked(net, space, {"body.3:out": list(range(6))})(x)
    pairs = zip(out.values(), ref.values()) if isinstance(out, dict) else zip(out, ref)
    for a, b in pairs:
        torch.testing.assert_close(a, b)


def test_output_after_a_concat_holds_every_producer_fixed():
    class Concat(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b, self.c = nn.Conv2d(3, 4, 1), nn.Conv2d(3, 6, 1), nn.Conv2d(4, 4, 1)

        def forward(self, x):
            return torch.cat([self.c(self.a(x)), self.b(x)], 1).mean((2, 3))

    space = build_layer_space(Concat().eval(), (1, 3, 4, 4))
    assert {g.name for g in space.groups if not g.prunable} == {"b:out", "c:out"}
    assert {g.name for g in space.prunable_groups} == {"a:out"}


def test_a_graph_torch_pruning_cannot_follow_gives_one_line_naming_the_module():
    with pytest.raises(GraphError) as err:
        build_layer_space(shufflenet_style(shuffle=flat_shuffle), SHAPE)
    msg = str(err.value)
    assert "\n" not in msg and "ShuffleNetV2Style" in msg and "after module 'stages." in msg


def test_cli_layers_on_split_shuffle_networks():
    spec = Path(__file__).with_name("shufflenet_style.py")
    obj = json.loads(run_cli("layers", "--model", f"{spec}:shufflenet_style", "--input-shape", "1,3,32,32", "--json").stdout)
    stream = next(g for g in obj["groups"] if g["name"] == STREAM_1)
    assert stream["prunable"] and stream["divisor"] == 4
    proc = run_cli("layers", "--model", f"{spec}:flat_shuffle_net", "--json", check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr + proc.stdout
    assert "cannot follow the channel wiring of ShuffleNetV2Style" in json.loads(proc.stdout)["error"]


def test_frozen_weights_still_hold_the_output_layer_fixed():
    net = TwoHeads().eval()
    for p in net.parameters():
        p.requires_grad_(False)
    space = build_layer_space(net, (1, 3, 8, 8))
    assert {g.name for g in space.groups if not g.prunable} == {"box:out", "cls:out"}


class DenseStyle(nn.Module):
    """DenseNet-style concatenation (each layer reads all earlier features), with a pooled classifier."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1, bias=False), nn.BatchNorm2d(6), nn.ReLU())
        self.l1 = nn.Sequential(nn.Conv2d(6, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU())
        self.l2 = nn.Sequential(nn.Conv2d(10, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU())
        self.fc = nn.Linear(14, 10)

    def forward(self, x):
        x = self.stem(x)
        x = torch.cat([x, self.l1(x)], 1)
        x = torch.cat([x, self.l2(x)], 1)
        return self.fc(x.mean((2, 3)))


def test_concat_networks_prune_as_masking_does():
    torch.manual_seed(0)
    net = DenseStyle().eval()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.3, 0.3)
                m.bias.uniform_(-0.2, 0.4)
    space = build_layer_space(net, (1, 3, 8, 8))
    assert {g.name for g in space.prunable_groups} == {"stem.0:out", "l1.0:out", "l2.0:out"}
    kept = {"stem.0:out": [0, 2, 5], "l1.0:out": [1, 3], "l2.0:out": [0, 1, 3]}
    pruned = apply_kept(net, space, kept)
    assert pruned.fc.in_features == 8 and pruned.l2[0].in_channels == 5
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(pruned(x), masked(net, space, kept)(x))


class ChannelPad(nn.Module):
    """A residual whose shortcut pads channels with zeros (F.pad on the channel axis), not a mapped op."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 4, 3, padding=1)
        self.b = nn.Conv2d(4, 6, 3, padding=1)
        self.c = nn.Conv2d(6, 6, 1)

    def forward(self, x):
        y = self.a(x)
        z = self.b(y) + nn.functional.pad(y, (0, 0, 0, 0, 0, 2))
        return self.c(z)


def test_an_op_that_changes_the_channel_count_holds_its_channels_fixed():
    space = build_layer_space(ChannelPad().eval(), (1, 3, 8, 8))
    padded = next(g for g in space.groups if "a:out" in g.members)
    assert not padded.prunable and "ConstantPadNdBackward0 changes the channel count (4 → 6)" in padded.reason
