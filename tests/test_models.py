"""Tests for the model zoo: builders, registry, user specs and checkpoint loading."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from edgeprune.models import (
    MODELS,
    CifarResNet,
    ModelSpecError,
    WeightsError,
    build_model,
    load_weights,
    mobilenetv2,
    resnet20,
    resnet32,
)

PRETRAINED = Path("/work/shared/data/pretrained/cifar-resnet/resnet20-12fca82f.th")
CIFAR_TEST = Path("/work/shared/data/cifar10-jpeg/test.npz")
MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def _n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", sorted(MODELS))
def test_zoo_model_forward(name):
    model, shape = build_model(name)
    assert shape == MODELS[name].input_shape
    assert not model.training
    with torch.no_grad():
        out = model(torch.randn(shape))
    assert out.shape == (1, 10)
    assert torch.isfinite(out).all()


def test_default_input_shapes():
    assert MODELS["demo_cnn"].input_shape == (1, 1, 8, 8)
    assert MODELS["demo_cnn32"].input_shape == (1, 3, 32, 32)
    assert all(MODELS[f"resnet{d}"].input_shape == (1, 3, 32, 32) for d in (20, 32, 44, 56))


def test_resnet_param_counts():
    assert 0.26e6 < _n_params(resnet20()) < 0.28e6  # paper: 0.27M
    assert 0.84e6 < _n_params(build_model("resnet56")[0]) < 0.86e6  # paper: 0.85M
    assert 2.1e6 < _n_params(mobilenetv2()) < 2.4e6


def test_resnet_bad_depth_and_widths():
    with pytest.raises(ValueError, match="6n\\+2"):
        CifarResNet(depth=21)
    with pytest.raises(ValueError, match="inner_widths needs 9"):
        CifarResNet(depth=20, inner_widths=[8] * 8)


def test_resnet_custom_inner_widths():
    inner = [4, 8, 12, 5, 6, 7, 20, 1, 64]
    model = CifarResNet(depth=20, inner_widths=inner).eval()
    assert model.block_inner_widths() == inner
    assert [b.conv2.in_channels for b in model.blocks()] == inner
    assert [b.conv2.out_channels for b in model.blocks()] == [16] * 3 + [32] * 3 + [64] * 3
    with torch.no_grad():
        assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_resnet_custom_stage_widths_pad_at_runtime():
    model = CifarResNet(depth=20, widths=(8, 24, 40), num_classes=7).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert model(x).shape == (2, 7)
        # 8 -> 24 channels needs 16 zero channels, split 8/8 around the strided input.
        stem = torch.relu(model.bn1(model.conv1(x)))
        padded = model.layer2[0].shortcut(stem)
    assert padded.shape == (2, 24, 16, 16)
    assert torch.equal(padded[:, 8:16], stem[:, :, ::2, ::2])
    assert padded[:, :8].abs().sum() == 0 and padded[:, 16:].abs().sum() == 0


def test_resnet_rebuilt_from_inner_widths_matches_pruned_state():
    pruned = CifarResNet(depth=20, inner_widths=[3] * 9).eval()
    rebuilt = CifarResNet(depth=20, inner_widths=pruned.block_inner_widths()).eval()
    rebuilt.load_state_dict(pruned.state_dict())
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(pruned(x), rebuilt(x))


def test_mobilenetv2_width_mult_and_output_stride():
    model = mobilenetv2(width_mult=0.5).eval()
    with torch.no_grad():
        feats = model.features(torch.randn(1, 3, 32, 32))
    assert feats.shape[-2:] == (4, 4)
    assert all(m.out_channels % 8 == 0 for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    assert _n_params(model) < _n_params(mobilenetv2())


def test_zoo_kwargs_and_input_shape_override():
    model, shape = build_model("demo_cnn", num_classes=3, input_shape=(2, 1, 16, 16))
    assert shape == (2, 1, 16, 16)
    assert model(torch.randn(shape)).shape == (2, 3)


def test_unknown_model_lists_names():
    with pytest.raises(ModelSpecError, match="resnet20.*mobilenetv2.*demo_cnn"):
        build_model("resnet18")


@pytest.fixture
def pretrained_path():
    if not PRETRAINED.is_file():
        pytest.skip(f"{PRETRAINED} not present")
    return PRETRAINED


def test_load_pretrained_resnet20(pretrained_path):
    model, _ = build_model("resnet20", weights=pretrained_path)
    ref = torch.load(pretrained_path, map_location="cpu", weights_only=True)["state_dict"]
    assert torch.equal(model.linear.weight, ref["module.linear.weight"])
    assert torch.equal(model.layer3[2].bn2.running_var, ref["module.layer3.2.bn2.running_var"])


def test_pretrained_resnet20_classifies_cifar(pretrained_path):
    if not CIFAR_TEST.is_file():
        pytest.skip(f"{CIFAR_TEST} not present")
    data = np.load(CIFAR_TEST)
    idx = np.random.default_rng(0).permutation(len(data["y"]))[:200]  # arrays are stored class by class
    x = torch.from_numpy(data["x"][idx]).permute(0, 3, 1, 2).float().div(255)
    y = torch.from_numpy(data["y"][idx])
    assert len(torch.unique(y)) == 10
    model, _ = build_model("resnet20", weights=pretrained_path)
    with torch.no_grad():
        acc = (model((x - MEAN) / STD).argmax(1) == y).float().mean().item()
    assert acc > 0.6, acc


def test_missing_weights_file(tmp_path):
    with pytest.raises(WeightsError, match="not found"):
        load_weights(resnet20(), tmp_path / "nope.th")


def test_corrupt_checkpoint(tmp_path):
    good = tmp_path / "good.pt"
    torch.save(resnet20().state_dict(), good)
    bad = tmp_path / "bad.pt"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(WeightsError, match="not a torch checkpoint"):
        load_weights(resnet20(), bad)
    text = tmp_path / "text.pt"
    text.write_text("hello, not a checkpoint\n")
    with pytest.raises(WeightsError, match="not a torch checkpoint"):
        load_weights(resnet20(), text)


def test_random_bytes_are_not_a_torch_checkpoint(tmp_path):
    noise = tmp_path / "noise.pt"
    noise.write_bytes(bytes((i * 131 + 7) % 256 for i in range(4096)))
    with pytest.raises(WeightsError, match="noise.pt is not a torch checkpoint") as err:
        load_weights(resnet20(), noise)
    assert "weights_only" not in str(err.value) and "re-save" not in str(err.value)


def test_checkpoint_with_python_objects_refused(tmp_path):
    path = tmp_path / "obj.pt"
    torch.save({"state_dict": resnet20().state_dict(), "cfg": Path("x")}, path)
    with pytest.raises(WeightsError, match="holds Python objects besides tensors") as err:
        load_weights(resnet20(), path)
    assert "weights_only=False" not in str(err.value)  # never advise unpickling an untrusted file


def test_wrapped_and_prefixed_state_dicts_load(tmp_path):
    src = resnet20()
    for i, wrap in enumerate((lambda sd: sd, lambda sd: {"model": sd}, lambda sd: {"state_dict": sd, "epoch": 3})):
        path = tmp_path / f"ckpt{i}.pt"
        torch.save(wrap({f"module.{k}": v for k, v in src.state_dict().items()}), path)
        dst = load_weights(resnet20(), path)
        assert torch.equal(dst.conv1.weight, src.conv1.weight)


def test_wrong_architecture_names_missing_keys(tmp_path):
    path = tmp_path / "r20.pt"
    torch.save(resnet20().state_dict(), path)
    with pytest.raises(WeightsError, match=r"missing key\(s\): layer1\.3\.conv1\.weight"):
        load_weights(resnet32(), path)


def test_shape_mismatch_named(tmp_path):
    path = tmp_path / "r20_10.pt"
    torch.save(resnet20().state_dict(), path)
    with pytest.raises(WeightsError, match=r"linear\.weight checkpoint \(10, 64\) vs model \(5, 64\)"):
        load_weights(resnet20(num_classes=5), path)


USER_FILE = """
import torch.nn as nn

def build():
    return nn.Sequential(nn.Conv2d(2, 4, 3), nn.Flatten(), nn.Linear(4 * 4 * 4, 6)), (1, 2, 6, 6)

def build_bare():
    return nn.Linear(5, 2)

def build_wrong():
    return 42
"""


@pytest.fixture
def user_file(tmp_path):
    path = tmp_path / "my_model.py"
    path.write_text(USER_FILE)
    return path


def test_user_file_spec(user_file):
    model, shape = build_model(f"{user_file}:build")
    assert shape == (1, 2, 6, 6)
    assert not model.training
    assert model(torch.randn(shape)).shape == (1, 6)


def test_user_file_spec_bare_module_needs_shape(user_file):
    with pytest.raises(ModelSpecError, match="input_shape"):
        build_model(f"{user_file}:build_bare")
    model, shape = build_model(f"{user_file}:build_bare", input_shape=(3, 5))
    assert shape == (3, 5) and model(torch.randn(shape)).shape == (3, 2)


def test_bad_user_specs(user_file, tmp_path):
    with pytest.raises(ModelSpecError, match="not found"):
        build_model(f"{tmp_path / 'missing.py'}:build")
    with pytest.raises(ModelSpecError, match="no function 'nope'"):
        build_model(f"{user_file}:nope")
    with pytest.raises(ModelSpecError, match="must return an nn.Module"):
        build_model(f"{user_file}:build_wrong")
    broken = tmp_path / "broken.py"
    broken.write_text("import nonexistent_module_xyz\n")
    with pytest.raises(ModelSpecError, match="importing .* failed"):
        build_model(f"{broken}:build")
