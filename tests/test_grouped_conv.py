"""Grouped (non-depthwise) convolutions: chunked channel groups, patterned pruning, micro-benchmarks."""
import copy
import random

import pytest
import torch
import torch.nn as nn

from edgeprune.measure.microbench import build_layer_model
from edgeprune.measure.sampling import plan_layer_points
from edgeprune.measure.variants import build_variant, check_widths, design_variant
from edgeprune.models.layer_space import build_layer_space
from edgeprune.structure.physical import allowed_widths, apply_kept, min_widths, round_widths


def grouped_net() -> nn.Sequential:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
                        nn.Conv2d(8, 12, 3, padding=1, groups=4, bias=False), nn.BatchNorm2d(12), nn.ReLU(),
                        nn.Conv2d(12, 16, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.3, 0.3)
                m.bias.uniform_(-0.2, 0.4)
    return net.eval()


SHAPE = (1, 3, 8, 8)


@pytest.fixture(scope="module")
def space():
    return build_layer_space(grouped_net(), SHAPE)


def test_groups_around_a_grouped_conv_come_in_chunks(space):
    groups = {g.name: g for g in space.prunable_groups}
    assert (groups["0:out"].divisor, groups["3:out"].divisor, groups["6:out"].divisor) == (4, 4, 1)
    grouped = next(l for l in space.layers if l.name == "3")
    assert grouped.signature.groups == 4 and grouped.signature.key().endswith("|g=4")
    assert min_widths(space) == {"0:out": 4, "3:out": 4, "6:out": 1}
    assert allowed_widths(12, None, 4) == [4, 8, 12]
    assert allowed_widths(24, 8, 3) == [24]
    assert round_widths({"0:out": 5, "3:out": 11, "6:out": 7}, None, space.dense_widths(),
                        {"0:out": 4, "3:out": 4}) == {"0:out": 4, "3:out": 12, "6:out": 7}


def test_patterned_pruning_equals_masking_the_dense_net(space):
    net = grouped_net()
    # chunks of 2 input channels per conv group: keep position 1 in each; chunks of 3 outputs: keep 0 and 2
    kept = {"0:out": [1, 3, 5, 7], "3:out": [0, 2, 3, 5, 6, 8, 9, 11]}
    pruned = apply_kept(net, space, kept)
    assert (pruned[3].in_channels, pruned[3].out_channels, pruned[3].groups) == (4, 8, 4)
    ref = copy.deepcopy(net)
    with torch.no_grad():
        for conv, bn, name in ((ref[0], ref[1], "0:out"), (ref[3], ref[4], "3:out")):
            drop = [i for i in range(conv.out_channels) if i not in kept[name]]
            conv.weight[drop] = 0
            bn.weight[drop] = 0
            bn.bias[drop] = 0
    x = torch.randn(2, *SHAPE[1:])
    with torch.no_grad():
        torch.testing.assert_close(pruned(x), ref(x))


def test_unpatterned_or_unbalanced_kept_sets_are_refused(space):
    with pytest.raises(ValueError, match="every group must keep the same channel positions"):
        apply_kept(grouped_net(), space, {"0:out": [0, 3, 5, 7]})
    with pytest.raises(ValueError, match="same channel positions"):
        apply_kept(grouped_net(), space, {"0:out": [0, 1, 2, 4, 6]})
    with pytest.raises(ValueError, match="not a multiple of 4"):
        check_widths(space, {"3:out": 6})


def test_variants_and_micro_benchmarks_respect_the_groups(space):
    rng = random.Random(0)
    for _ in range(5):
        widths = design_variant(space, rng)
        assert widths["0:out"] % 4 == 0 and widths["3:out"] % 4 == 0
        variant = build_variant(grouped_net(), space, widths)
        assert variant(torch.randn(1, *SHAPE[1:])).shape == (1, 10)
    points = plan_layer_points(space, 12)[next(l for l in space.layers if l.name == "3").signature.key()]
    assert points and all(i % 4 == 0 and o % 4 == 0 for i, o in points)
    layer, shape = build_layer_model(next(l for l in space.layers if l.name == "3").signature, 4, 8)
    assert layer[0].groups == 4 and layer(torch.randn(*shape)).shape == (1, 8, 8, 8)
    with pytest.raises(ValueError, match="divisible"):
        build_layer_model(next(l for l in space.layers if l.name == "3").signature, 6, 8)


class _ViewShuffle(nn.Module):
    def __init__(self, groups):
        super().__init__()
        self.groups = groups

    def forward(self, x):
        n, c, h, w = x.shape
        return x.view(n, self.groups, c // self.groups, h, w).transpose(1, 2).reshape(n, c, h, w)


@pytest.mark.parametrize("shuffle", [_ViewShuffle(4), nn.ChannelShuffle(4)], ids=["view-transpose", "module"])
def test_channels_through_a_shuffle_are_held_fixed_with_a_reason(shuffle):
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                        nn.Conv2d(8, 12, 1, groups=4), nn.BatchNorm2d(12), nn.ReLU(), shuffle,
                        nn.Conv2d(12, 12, 3, padding=1, groups=12), nn.BatchNorm2d(12),
                        nn.Conv2d(12, 16, 1, groups=4), nn.BatchNorm2d(16), nn.ReLU(),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10)).eval()
    space = build_layer_space(net, SHAPE)
    groups = {g.name: g for g in space.groups}
    shuffled = next(g for g in groups.values() if "3:out" in g.members)
    assert not shuffled.prunable and "channel shuffle" in shuffled.reason
    # groups on either side of it stay prunable, with the grouped convs' chunking
    assert groups["0:out"].prunable and groups["0:out"].divisor == 4
    assert groups["9:out"].prunable and groups["9:out"].divisor == 4


def test_methods_keep_whole_patterns_and_macs_count_groups(space):
    from edgeprune.costmodel.macs import layer_macs, network_macs
    from edgeprune.prune.global_magnitude import prune_global
    from edgeprune.prune.importance import channel_importance, keep_top
    from edgeprune.prune.uniform import prune_uniform

    grouped = next(l for l in space.layers if l.name == "3").signature
    assert layer_macs(grouped, 8, 12) == 8 * 12 * 9 * 64 // 4
    net = grouped_net()
    cost = lambda w: float(network_macs(space, w))  # noqa: E731
    for prune in (prune_uniform, prune_global):
        result = prune(net, space, cost, 0.5 * cost({}))
        pruned = apply_kept(net, space, result.kept)  # refuses unpatterned sets
        assert result.widths["0:out"] % 4 == 0 and result.widths["3:out"] % 4 == 0
        assert pruned(torch.randn(1, *SHAPE[1:])).shape == (1, 10)
    scores = {"0:out": [5.0, 1.0, 4.0, 1.0, 3.0, 0.0, 2.0, 9.0]}  # chunk sums: position 0 = 14, position 1 = 11
    assert keep_top(scores, {"0:out": 4}, {"0:out": 4}) == {"0:out": [0, 2, 4, 6]}
    assert set(channel_importance(net, space)) == {"0:out", "3:out", "6:out"}


def test_ecc_prunes_grouped_chunks_in_whole_patterns(space):
    from types import SimpleNamespace

    from edgeprune.costmodel.macs import network_macs
    from edgeprune.costmodel.model import CostModel
    from edgeprune.measure.variants import random_widths
    from edgeprune.prune.ecc import EccSettings, prune_ecc

    rng = random.Random(0)
    widths = [random_widths(space, rng, 0.1) for _ in range(30)] + [space.dense_widths()]
    y = [0.1 + network_macs(space, w) * 1e-5 for w in widths]
    cost_model = CostModel(source="network").fit(space, network_widths=widths, network_y=y)
    torch.manual_seed(0)
    batches = [(torch.randn(8, *SHAPE[1:]), torch.randint(0, 10, (8,))) for _ in range(4)]
    net = grouped_net().train()
    budget = 0.6 * float(cost_model.predict([{}])[0])
    result = prune_ecc(net, space, cost_model, budget, SimpleNamespace(train=batches), EccSettings(iters=4, steps=2))
    assert result.predicted_cost <= budget
    assert result.widths["0:out"] % 4 == 0 and result.widths["3:out"] % 4 == 0
    assert apply_kept(net, space, result.kept)(torch.randn(1, *SHAPE[1:])).shape == (1, 10)
