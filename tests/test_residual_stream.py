"""Pruning the residual streams of option-A CIFAR ResNets through the channel-mapping shortcut."""
import copy
import random

import numpy as np
import onnxruntime as ort
import pytest
import torch

from edgeprune.export.onnx_parity import to_onnx_bytes
from edgeprune.models.layer_space import build_layer_space
from edgeprune.models.resnet_cifar import PadShortcut
from edgeprune.models.zoo import build_model
from edgeprune.prune.artifact import load_compressed, save_compressed
from edgeprune.prune.importance import channel_importance
from edgeprune.structure.physical import apply_kept

STREAM_SHORTCUTS = {"layer2.0.conv2:out": "layer2.0.shortcut", "layer3.0.conv2:out": "layer3.0.shortcut"}


@pytest.fixture(scope="module")
def resnet():
    torch.manual_seed(0)
    model, shape = build_model("resnet20")
    with torch.no_grad():  # non-trivial BN, so a wrong slice or a lost shortcut channel shows in the output
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.5)
    return model.eval(), build_layer_space(model, shape), shape


def _random_kept(space, seed):
    rng = random.Random(seed)
    return {g.name: sorted(rng.sample(range(g.width), rng.randint(1, g.width - 1))) for g in space.prunable_groups}


def _masked_reference(model, space, kept):
    """The dense model with every dropped channel silenced: its filters, BN and any shortcut copy into it."""
    ref = copy.deepcopy(model)
    modules = dict(ref.named_modules())
    with torch.no_grad():
        for g in space.prunable_groups:
            drop = [i for i in range(g.width) if i not in kept[g.name]]
            for member in g.members:
                name, side = member.split(":")
                if side == "out":
                    modules[name].weight[drop] = 0
                    bn = modules[name.replace("conv", "bn")]
                    bn.weight[drop] = 0
                    bn.bias[drop] = 0
            if g.name in STREAM_SHORTCUTS:
                shortcut = modules[STREAM_SHORTCUTS[g.name]]
                source = shortcut.source.clone()
                source[drop] = -1
                shortcut.set_source(source, shortcut.in_channels)
    return ref


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pruned_streams_compute_the_masked_dense_network(resnet, seed):
    model, space, _ = resnet
    kept = _random_kept(space, seed)
    pruned = apply_kept(model, space, kept)
    assert pruned.conv1.out_channels == len(kept["conv1:out"])
    assert pruned.layer2[0].shortcut.in_channels == len(kept["conv1:out"])
    assert pruned.layer2[0].shortcut.out_channels == len(kept["layer2.0.conv2:out"])
    assert pruned.linear.in_features == len(kept["layer3.0.conv2:out"])
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(pruned(x), _masked_reference(model, space, kept)(x), atol=1e-4, rtol=1e-4)


def test_shortcut_map_follows_both_pruned_sides(resnet):
    model, space, _ = resnet
    kept = {"conv1:out": [0, 3, 5, 15], "layer2.0.conv2:out": [0, 8, 9, 11, 20, 23, 24, 31]}
    shortcut = apply_kept(model, space, kept).layer2[0].shortcut
    # dense: output j copies input j - 8 for j in 8..23; of inputs 0, 1, 3, 12, 15 only 0, 3, 15 survive (as 0, 1, 3)
    assert shortcut.source.tolist() == [-1, 0, -1, 1, -1, 3, -1, -1]
    x = torch.randn(1, 4, 4, 4)
    y = shortcut(x)
    for out, src in [(1, 0), (3, 1), (5, 3)]:
        assert torch.equal(y[:, out], x[:, src, ::2, ::2])
    assert y[:, [0, 2, 4, 6, 7]].abs().sum() == 0


def test_dense_shortcut_is_a_plain_pad_and_keeps_checkpoints_loadable(resnet):
    model, _, _ = resnet
    shortcut = model.layer2[0].shortcut
    assert isinstance(shortcut, PadShortcut) and shortcut._pad == (8, 8)
    assert not any("source" in k or "gather" in k for k in model.state_dict())
    onnx_ops = _onnx_ops(model)
    assert "Pad" in onnx_ops and "Gather" not in onnx_ops


def test_pruned_streams_export_to_onnx_with_parity(resnet):
    model, space, shape = resnet
    pruned = apply_kept(model, space, _random_kept(space, 5))
    data = to_onnx_bytes(pruned, shape)
    assert "Gather" in _onnx_ops(pruned)
    x = torch.randn(*shape)
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    with torch.no_grad():
        np.testing.assert_allclose(got, pruned(x).numpy(), atol=1e-4)


def test_artifact_round_trip_rebuilds_the_shortcut_maps(resnet, tmp_path):
    model, space, shape = resnet
    kept = _random_kept(space, 7)
    pruned = apply_kept(model, space, kept)
    save_compressed(tmp_path, pruned, "resnet20", shape, kept, {})
    loaded, _ = load_compressed(tmp_path)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), pruned(x))


def test_stream_groups_get_importance_scores(resnet):
    model, space, _ = resnet
    scores = channel_importance(model, space)
    assert {k: len(v) for k, v in scores.items() if k in ("conv1:out", "layer3.0.conv2:out")} == {
        "conv1:out": 16, "layer3.0.conv2:out": 64}
    assert all(np.all(v > 0) for v in scores.values())


def _onnx_ops(model):
    import onnx
    return {n.op_type for n in onnx.load_from_string(to_onnx_bytes(model, (1, 3, 32, 32))).graph.node}
