"""Compressed-model artifact: channel spec + state_dict round trip, and clear errors for broken directories."""
import json
import textwrap

import pytest
import torch

from edgeprune.models.layer_space import build_layer_space
from edgeprune.models.zoo import build_model
from edgeprune.prune.artifact import ArtifactError, load_compressed, save_compressed
from edgeprune.structure.physical import apply_kept

SMALL = {"widths": [16, 32, 32]}  # builder arguments travel in channels.json
KEPT = {"conv1:out": [0, 2, 5, 7, 11], "conv2:out": list(range(1, 32, 2))}


@pytest.fixture
def saved(tmp_path):
    """A randomly pruned demo_cnn with non-trivial BN statistics, saved to tmp_path/model."""
    torch.manual_seed(1)
    model, shape = build_model("demo_cnn", **SMALL)
    space = build_layer_space(model, shape)
    pruned = apply_kept(model, space, KEPT).train()
    with torch.no_grad():
        pruned(torch.randn(16, *shape[1:]))
    pruned.eval()
    meta = {"method": "uniform", "budget": "0.5", "accuracy": 0.91, "cost": torch.tensor(1.5).numpy()}
    save_compressed(tmp_path / "model", pruned, "demo_cnn", shape, KEPT, meta, model_kwargs=SMALL)
    return tmp_path / "model", pruned, shape


def test_round_trip_gives_identical_outputs(saved):
    model_dir, pruned, shape = saved
    loaded, info = load_compressed(model_dir)
    assert not loaded.training
    x = torch.randn(8, *shape[1:])
    with torch.no_grad():
        assert torch.equal(loaded(x), pruned(x))
    assert info["kept"] == KEPT
    assert info["widths"] == {"conv1:out": 5, "conv2:out": 16}
    assert info["meta"]["method"] == "uniform" and info["meta"]["cost"] == 1.5
    assert info["model_kwargs"] == SMALL
    assert info["format"] == "edgeprune-compressed" and info["version"] == 2 and info["edgeprune_version"]
    assert info["blocks_removed"] == []
    # The weights are a plain state_dict: loadable without unpickling arbitrary objects.
    state = torch.load(model_dir / "weights.pt", weights_only=True)
    assert set(state) == set(pruned.state_dict())


def test_round_trip_of_a_user_model_file(tmp_path, monkeypatch):
    src = tmp_path / "net.py"
    src.write_text(textwrap.dedent("""
        import torch.nn as nn
        def build():
            return nn.Sequential(nn.Conv2d(3, 12, 3), nn.BatchNorm2d(12), nn.ReLU(), nn.Conv2d(12, 8, 1),
                                 nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4))
    """))
    monkeypatch.chdir(tmp_path)
    model, shape = build_model("net.py:build", input_shape=(1, 3, 10, 10))
    space = build_layer_space(model, shape)
    kept = {"0:out": [1, 4, 9], "3:out": [0, 7]}
    pruned = apply_kept(model, space, kept)
    save_compressed(tmp_path / "m", pruned, "net.py:build", shape, kept, {"method": "global"})
    monkeypatch.chdir("/")  # the spec was stored with an absolute path
    loaded, info = load_compressed(tmp_path / "m")
    assert info["base_model"] == f"{src}:build"
    x = torch.randn(2, 3, 10, 10)
    with torch.no_grad():
        assert torch.equal(loaded(x), pruned(x))


def _edit(model_dir, **changes):
    path = model_dir / "channels.json"
    info = json.loads(path.read_text())
    info.update(changes)
    path.write_text(json.dumps(info))


def test_missing_and_corrupt_files(saved, tmp_path):
    model_dir, _, _ = saved
    with pytest.raises(ArtifactError, match="channels.json not found") as missing:
        load_compressed(tmp_path / "nowhere")
    assert "edgeprune compress" in missing.value.hint and "save_compressed" not in str(missing.value)  # no code names
    (model_dir / "weights.pt").write_bytes(b"not a torch file")
    with pytest.raises(ArtifactError, match="cannot be read as a state_dict"):
        load_compressed(model_dir)
    (model_dir / "weights.pt").unlink()
    with pytest.raises(ArtifactError, match="weights are missing"):
        load_compressed(model_dir)
    (model_dir / "channels.json").write_text("{ truncated")
    with pytest.raises(ArtifactError, match="not valid JSON"):
        load_compressed(model_dir)


def test_pickled_module_is_refused(saved):
    model_dir, pruned, _ = saved
    torch.save(pruned, model_dir / "weights.pt")  # a whole pickled module, not a state_dict
    with pytest.raises(ArtifactError, match="cannot be read as a state_dict"):
        load_compressed(model_dir)


def test_newer_format_and_wrong_format(saved):
    model_dir, _, _ = saved
    _edit(model_dir, version=3)
    with pytest.raises(ArtifactError, match="format version 3.*reads up to version 2"):
        load_compressed(model_dir)
    _edit(model_dir, version=2, format="something-else")
    with pytest.raises(ArtifactError, match="not an edgeprune-compressed channel spec"):
        load_compressed(model_dir)


def test_state_dict_or_spec_that_does_not_fit(saved):
    model_dir, _, _ = saved
    _edit(model_dir, kept={"conv1:out": [0, 2, 5, 7]}, widths={"conv1:out": 4})  # weights hold 5 channels
    with pytest.raises(ArtifactError, match="(?s)weights.pt does not fit .*size mismatch for conv1.weight"):
        load_compressed(model_dir)
    _edit(model_dir, widths={"conv1:out": 5})
    with pytest.raises(ArtifactError, match="widths .* disagree with the kept indices"):
        load_compressed(model_dir)
    _edit(model_dir, kept={"conv1:out": [0, 99]}, widths={"conv1:out": 2})
    with pytest.raises(ArtifactError, match="does not fit demo_cnn: group conv1:out: kept indices"):
        load_compressed(model_dir)
    _edit(model_dir, base_model="resnet99")
    with pytest.raises(ArtifactError, match="cannot rebuild base model 'resnet99'"):
        load_compressed(model_dir)
