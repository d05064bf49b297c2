"""Honest outcomes: chance-level and collapsed accuracy, unused budget, BatchNorm re-estimation."""
import torch
from torch import nn

from edgeprune.outcomes import accuracy_warnings, budget_warnings
from edgeprune.train import recalibrate_bn


def test_chance_level_is_a_warning_with_what_to_try():
    (w,) = accuracy_warnings(0.85, 0.11, 10)
    assert "chance" in w and "--epochs" in w and "budget" in w
    assert accuracy_warnings(0.85, 0.151, 10) != [] and "pt below dense" in accuracy_warnings(0.85, 0.6, 10)[0]
    assert accuracy_warnings(0.85, 0.80, 10) == []


def test_unused_budget_says_why_the_loop_stopped():
    (w,) = budget_warnings(0.54, "all 3 correction round(s) used", "latency")
    assert "46% of the budget is unused" in w and "all 3 correction round(s) used" in w
    assert budget_warnings(0.95, "", "latency") == []


def test_recalibrate_bn_gives_the_batch_statistics():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    net[1].running_mean.fill_(7.0)  # stale statistics, as after channel removal
    batches = [(torch.randn(16, 3, 8, 8) * 2 + 1, torch.zeros(16)) for _ in range(3)]
    assert recalibrate_bn(net, batches, batches=3) == 3
    with torch.no_grad():
        feats = torch.cat([net[0](x) for x, _ in batches])
    torch.testing.assert_close(net[1].running_mean, feats.mean((0, 2, 3)), atol=1e-5, rtol=1e-5)
    assert not net.training and net[1].momentum == 0.1
