"""Shared fixtures for the export and verify tests: a briefly trained demo CNN saved as a compressed model dir."""
from __future__ import annotations

import numpy as np
import torch

from edgeprune.costmodel.dataset import LayerSamples
from edgeprune.costmodel.features import FeatureSpec
from edgeprune.costmodel.model import CostModel
from edgeprune.data import load_data
from edgeprune.models import build_model
from edgeprune.measure.registry import open_device
from edgeprune.models.layer_space import architecture_hash, build_layer_space
from edgeprune.prune.artifact import save_compressed
from edgeprune.train import train_from_scratch


def trained_demo(epochs: int = 2):
    """(demo_cnn trained on digits, its input shape, the digits bundle)."""
    torch.manual_seed(0)
    data = load_data("digits")
    net, shape = build_model("demo_cnn")
    train_from_scratch(net, data, epochs)
    return net.eval(), shape, data


def save_dir(path, net, shape, meta=None):
    """Save ``net`` unpruned as a compressed-model directory recording the data source."""
    space = build_layer_space(net, shape)
    kept = {g: list(range(w)) for g, w in space.dense_widths().items()}
    return save_compressed(path, net, "demo_cnn", shape, kept, meta if meta is not None else {"data": "digits"})


def local_provenance(net, shape, name: str = "demo_cnn", **extra) -> dict:
    """Provenance of a cost model fitted on this machine (device ``local``) for ``net``'s architecture."""
    return {"device": {"name": "local", "fingerprint_id": open_device("local").info()["fingerprint_id"]},
            "model": {"name": name, "architecture_hash": architecture_hash(build_layer_space(net, shape))}, **extra}


def synthetic_cost_model(net, shape) -> CostModel:
    """A per-layer cost model of demo_cnn: cost ∝ c_in·c_out (no measurements needed)."""
    space = build_layer_space(net, shape)
    rng = np.random.default_rng(0)
    samples = {}
    for layer in space.layers:
        X = rng.integers(1, 129, size=(40, 2)).astype(float)
        samples[layer.signature.key()] = LayerSamples(None, X, 1e-4 * X[:, 0] * X[:, 1] + 1e-3)
    return CostModel("layers", spec=FeatureSpec(1, 1, 1, 1)).fit(space, samples, [], [])
