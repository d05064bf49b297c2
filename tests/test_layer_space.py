import pytest
import torch
import torch.nn as nn

from edgeprune.models import build_model
from edgeprune.models.layer_space import LayerSignature, build_layer_space
from edgeprune.measure.variants import build_variant, check_widths, random_widths
import random


@pytest.fixture(scope="module")
def resnet20_space():
    model, shape = build_model("resnet20")
    return model, build_layer_space(model, shape)


STREAMS = {
    "conv1:out": ["conv1:out", "layer1.0.conv1:in", "layer1.0.conv2:out", "layer1.1.conv1:in", "layer1.1.conv2:out",
                  "layer1.2.conv1:in", "layer1.2.conv2:out", "layer2.0.conv1:in"],
    "layer2.0.conv2:out": ["layer2.0.conv2:out", "layer2.1.conv1:in", "layer2.1.conv2:out", "layer2.2.conv1:in",
                           "layer2.2.conv2:out", "layer3.0.conv1:in"],
    "layer3.0.conv2:out": ["layer3.0.conv2:out", "layer3.1.conv1:in", "layer3.1.conv2:out", "layer3.2.conv1:in",
                           "layer3.2.conv2:out", "linear:in"],
}


def test_resnet20_prunes_inner_widths_and_residual_streams(resnet20_space):
    _, space = resnet20_space
    assert len(space.layers) == 20  # 19 convs + linear
    prunable = {g.name: g for g in space.prunable_groups}
    assert len(prunable) == 12  # one inner width per BasicBlock + one residual stream per stage
    inner = [g for name, g in prunable.items() if name not in STREAMS]
    assert len(inner) == 9 and all(g.name.endswith("conv1:out") and g.name.startswith("layer") for g in inner)
    for g in inner:
        block = g.name.rsplit(".", 1)[0]
        assert g.members == [f"{block}.conv1:out", f"{block}.conv2:in"]
    # each stage's stream is its own group: the option-A shortcut between stages maps channels, not couples them
    for name, members in STREAMS.items():
        assert prunable[name].members == members
    assert [(g.name, g.reason) for g in space.groups if not g.prunable] == [("linear:out", "feeds the model output")]


def test_channel_padding_the_graph_cannot_follow_is_held_fixed():
    class PadNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(6, 6, 3, padding=1)

        def forward(self, x):
            y = self.a(x)
            return self.b(torch.nn.functional.pad(y, (0, 0, 0, 0, 1, 1)))

    space = build_layer_space(PadNet(), (1, 3, 8, 8))
    fixed = {g.name: g.reason for g in space.groups if not g.prunable}
    assert "ConstantPadNdBackward0 changes the channel count (4 → 6)" in fixed["a:out"]


def test_resnet20_layer_dims_and_signatures(resnet20_space):
    _, space = resnet20_space
    by_name = {l.name: l for l in space.layers}
    l = by_name["layer2.0.conv1"]
    assert (l.c_in, l.c_out) == (16, 32)
    assert l.signature == LayerSignature("conv", (3, 3), (2, 2), (1, 1), (1, 1), (32, 32), False, True, "relu")
    assert by_name["layer3.2.conv2"].signature.in_hw == (8, 8)
    assert by_name["layer3.2.conv2"].signature.act is None  # the add comes before the ReLU
    assert by_name["linear"].signature.op == "linear"
    assert by_name["conv1"].in_group is None and by_name["conv1"].out_group == "conv1:out"
    widths = {"layer1.0.conv1:out": 5, "conv1:out": 12}
    assert by_name["layer1.0.conv1"].dims(widths) == (12, 5)
    assert by_name["layer1.0.conv2"].dims(widths) == (5, 12)
    assert by_name["layer2.0.conv1"].dims(widths) == (12, 32)
    sig = by_name["layer1.0.conv1"].signature
    assert LayerSignature.from_dict(__import__("dataclasses").asdict(sig)) == sig


def test_mobilenetv2_depthwise_is_coupled():
    model, shape = build_model("mobilenetv2")
    space = build_layer_space(model, shape)
    dws = [l for l in space.layers if l.signature.op == "dwconv"]
    assert len(dws) == 17
    for l in dws:
        assert l.in_group == l.out_group is not None
        assert l.dims({l.out_group: 7}) == (7, 7)
    # residual streams inside a stage are one group spanning several blocks
    assert max(len(g.members) for g in space.prunable_groups) >= 6


def test_variant_has_requested_widths_and_runs(resnet20_space):
    model, space = resnet20_space
    widths = random_widths(space, random.Random(3))
    variant = build_variant(model, space, widths)
    modules = dict(variant.named_modules())
    for name, w in widths.items():
        assert modules[name.split(":")[0]].out_channels == w
    assert variant(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    # the original model is untouched
    assert dict(model.named_modules())["layer1.0.conv1"].out_channels == 16


def test_bad_widths_are_rejected(resnet20_space):
    _, space = resnet20_space
    with pytest.raises(ValueError, match="unknown or non-prunable"):
        check_widths(space, {"linear:out": 8})
    with pytest.raises(ValueError, match="outside 1..16"):
        check_widths(space, {"layer1.0.conv1:out": 17})
