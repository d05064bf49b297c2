import random

import numpy as np
import pytest

from edgeprune.costmodel.features import FeatureSpec
from edgeprune.costmodel.platform import PlatformCostModel
from edgeprune.measure.variants import build_variant, random_widths
from edgeprune.models import build_model
from edgeprune.models.layer_space import build_layer_space

SPEC = FeatureSpec(1, 8, 1, 1)
THETA = {"conv": np.array([2e-6, 1e-5, 2e-5, 3e-3]), "linear": np.array([1e-5, 0, 0, 1e-3]),
         "dwconv": np.array([4e-6, 0, 1e-5, 2e-3])}


def synthetic_cost(space, widths):
    """A device whose per-op costs follow the platform model's own form, plus a fixed call overhead."""
    model = PlatformCostModel(SPEC)
    f = model.features(space, widths).reshape(3, 4)
    return 0.05 + sum(f[i] @ THETA[op] for i, op in enumerate(("conv", "dwconv", "linear")))


def test_predicts_an_unseen_architecture():
    items = []
    for name in ("resnet20", "resnet32", "demo_cnn32"):
        model, shape = build_model(name)
        space = build_layer_space(model, shape)
        rng = random.Random(name)
        for _ in range(15):
            w = random_widths(space, rng)
            items.append((space, w, synthetic_cost(space, w)))
    platform = PlatformCostModel(SPEC).fit_spaces(items)
    model, shape = build_model("resnet56")
    space = build_layer_space(model, shape)
    widths = random_widths(space, random.Random(5))
    truth = synthetic_cost(space, widths)
    # the public API takes real (pruned) modules
    pred = platform.predict([(build_variant(model, space, widths), shape)])[0]
    assert pred == pytest.approx(truth, rel=0.02)


def test_needs_enough_networks():
    model, shape = build_model("demo_cnn")
    with pytest.raises(ValueError, match="at least 3"):
        PlatformCostModel().fit([(model, shape, 1.0)])
