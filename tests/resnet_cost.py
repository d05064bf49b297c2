"""A ResNet-20 with a cost model fitted on synthetic MAC-proportional costs, for pruning-method tests."""
import random
from types import SimpleNamespace

import torch

from edgeprune.costmodel.macs import network_macs
from edgeprune.costmodel.model import CostModel
from edgeprune.measure.variants import random_widths
from edgeprune.models.layer_space import build_layer_space
from edgeprune.models.zoo import build_model


def resnet20_with_cost_model(batch: int = 4, batches: int = 3):
    """(model, layer space, fitted cost model, data with `batches` random train (and val) batches)."""
    torch.manual_seed(0)
    model, shape = build_model("resnet20")
    space = build_layer_space(model, shape)
    rng = random.Random(0)
    widths = [random_widths(space, rng, 0.05) for _ in range(60)] + [space.dense_widths()]
    y = [0.05 + network_macs(space, w) * 1e-8 for w in widths]
    cost_model = CostModel(source="network").fit(space, network_widths=widths, network_y=y)
    data = [(torch.randn(batch, 3, 32, 32), torch.randint(0, 10, (batch,))) for _ in range(batches)]
    return model, space, cost_model, SimpleNamespace(train=data, val=data)
