"""Joint layer + channel pruning: polarization, γ thresholds, block ranking/removal, cost without removed layers,
artifacts with removed blocks, and `compress --method joint` end to end."""
import copy
import json

import numpy as np
import pytest
import torch

from conftest import run_cli
from edgeprune.costmodel.dataset import LayerSamples
from edgeprune.costmodel.features import FeatureSpec
from edgeprune.costmodel.store import default_model_path
from edgeprune.costmodel.macs import network_macs
from edgeprune.costmodel.model import CostModel
from edgeprune.costmodel.torch_cost import differentiable_cost
from edgeprune.data import load_data
from edgeprune.models.layer_space import architecture_hash, build_layer_space
from edgeprune.measure.registry import open_device
from edgeprune.models.zoo import build_model
from edgeprune.prune.artifact import ArtifactError, load_compressed, read_info, save_compressed
from edgeprune.prune.budget import InfeasibleBudget
from edgeprune.structure.blocks import apply_pruning, block_layers, remove_blocks, removable_blocks
from edgeprune.prune.joint.ranking import rank_blocks
from edgeprune.prune.joint.method import replan, prune_joint
from edgeprune.prune.joint.polarize import polarization, polarization_penalty, sparse_train
from edgeprune.prune.joint.scaling import batchnorms
from edgeprune.prune.joint.settings import JointSettings
from edgeprune.prune.joint.thresholds import histogram_threshold, sparsity
from edgeprune.structure.physical import apply_kept
from edgeprune.train import CheckpointError

SHAPE16 = (1, 3, 16, 16)  # resnet20 on 16x16 inputs: the real architecture at a quarter of the work
DEAD = ("layer1.1", "layer3.1")


def crafted_resnet20(dead=DEAD):
    """resnet20 with polarized γ (half of each BN's channels at 0.002, the rest in [0.5, 1]) and two dead blocks
    (every γ and β of their BN layers zero: their branch outputs exactly 0)."""
    torch.manual_seed(0)
    net, shape = build_model("resnet20", input_shape=SHAPE16)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, bn in batchnorms(net).items():
            n = bn.num_features
            gamma = torch.rand(n, generator=gen) * 0.5 + 0.5
            gamma[torch.randperm(n, generator=gen)[: n // 2]] = 0.002
            if name.startswith(tuple(d + "." for d in dead)):
                gamma.zero_()
                bn.bias.zero_()
            bn.weight.copy_(gamma)
    return net.eval(), shape


def layer_cost_model(space) -> CostModel:
    """Per-layer cost ∝ c_in·c_out + a constant (fitted from synthetic single-layer samples, no measuring)."""
    rng = np.random.default_rng(0)
    samples = {}
    for key in space.signatures():
        X = rng.integers(1, 129, size=(40, 2)).astype(float)
        samples[key] = LayerSamples(None, X, 1e-4 * X[:, 0] * X[:, 1] + 1e-3)
    return CostModel("layers", spec=FeatureSpec(1, 1, 1, 1)).fit(space, samples, [], [])


def network_cost_model(space) -> CostModel:
    """A ridge fit of whole-network costs (∝ MACs + overhead) on per-signature features, as ECC fits."""
    rng = np.random.default_rng(1)
    dense = space.dense_widths()
    widths = [{g: int(rng.integers(1, w + 1)) for g, w in dense.items()} for _ in range(40)] + [dense]
    y = [0.2 + network_macs(space, w) * 1e-6 for w in widths]
    return CostModel("network").fit(space, network_widths=widths, network_y=y)


def test_polarization_value_and_gradient():
    gamma = torch.tensor([0.1, 0.2, 0.3, 0.9], requires_grad=True)  # mean 0.375
    value = polarization(gamma, t=1.2)
    assert value.item() == pytest.approx(1.2 * 1.5 - (0.275 + 0.175 + 0.075 + 0.525))
    value.backward()
    # d/dγ_i = t·sign(γ_i) − sign(γ_i − m) + mean_j sign(γ_j − m); here mean_j sign = −0.5
    assert gamma.grad.tolist() == pytest.approx([1.7, 1.7, 1.7, -0.3])
    bn_a, bn_b = torch.nn.BatchNorm2d(4), torch.nn.BatchNorm2d(2)
    with torch.no_grad():
        bn_a.weight.copy_(gamma.detach())
        bn_b.weight.copy_(torch.tensor([0.5, 0.5]))
    # Each layer is polarized around its own mean: a uniform layer adds only t·Σ|γ|.
    assert polarization_penalty([bn_a, bn_b], 1.2).item() == pytest.approx(value.item() + 1.2)


def test_sparse_training_clamps_gamma_and_resumes_exactly(tmp_path):
    data = load_data("digits", batch_size=64)
    settings = JointSettings(lam=0.05, a=0.8, sparse_epochs=2, max_steps_per_epoch=3)

    def run(checkpoint_dir, crash_after=None):
        torch.manual_seed(0)
        net, _ = build_model("demo_cnn", widths=(8, 8, 8))

        def progress(record):
            if record["epoch"] == crash_after:
                raise KeyboardInterrupt

        bns = batchnorms(net)
        try:
            history = sparse_train(net, bns, data, settings, checkpoint_dir, progress)
        except KeyboardInterrupt:
            return None, None
        return net, history

    straight, history = run(tmp_path / "a")
    assert [h["epoch"] for h in history] == [1, 2] and all(h["polarization"] > 0 for h in history)
    for bn in batchnorms(straight).values():
        assert 0 <= bn.weight.min() and bn.weight.max() <= 0.8
    assert run(tmp_path / "b", crash_after=1) == (None, None)
    resumed, history_b = run(tmp_path / "b")
    assert history_b == history
    for (k, v), w in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(v, w), k
    with pytest.raises(CheckpointError, match="other settings"):
        sparse_train(resumed, batchnorms(resumed), data, JointSettings(lam=0.1, sparse_epochs=2,
                                                                       max_steps_per_epoch=3), tmp_path / "b")


def test_histogram_threshold_finds_the_first_valley():
    rng = np.random.default_rng(0)
    low = np.abs(rng.normal(0.0, 0.01, 40))  # polarized: a spike at zero ...
    high = rng.uniform(0.45, 0.9, 40)  # ... and the live channels
    thr = histogram_threshold(np.concatenate([low, high]), 0.01)
    assert low.max() < thr < high.min()
    assert sparsity(np.concatenate([low, high]), thr) == 0.5
    # The first valley from the left, not the deepest: counts 5, 1, 4, 0, 6 → valley at bin 1.
    gamma = np.repeat([0.005, 0.015, 0.025, 0.045], [5, 1, 4, 6])
    assert histogram_threshold(gamma, 0.01) == pytest.approx(0.015)
    # A valley of several equal bins: its middle.
    assert histogram_threshold(np.array([0.0, 0.0, 0.0, 0.051, 0.052]), 0.01) == pytest.approx(0.03)
    assert histogram_threshold(np.array([0.0, 0.0, 0.011, 0.025]), 0.01) is None  # never rises again
    assert histogram_threshold(np.full(8, 0.5), 0.01) is None
    with pytest.raises(ValueError, match="bin width"):
        histogram_threshold(low, 0.0)


def test_removable_blocks_and_ranking():
    net, shape = build_model("resnet20", input_shape=SHAPE16)
    blocks = removable_blocks(net)
    # Not the first block of stages 2 and 3 (stride 2, width doubles).
    assert blocks == ["layer1.0", "layer1.1", "layer1.2", "layer2.1", "layer2.2", "layer3.1", "layer3.2"]
    mobile, _ = build_model("mobilenetv2")
    residual = [n for n, m in mobile.named_modules() if getattr(m, "use_residual", False)]
    assert removable_blocks(mobile) == residual and residual
    sparsity_ = {"layer1.0.bn1": 0.5, "layer1.0.bn2": 0.5, "layer1.1.bn1": 0.9, "layer1.1.bn2": 0.7,
                 "layer2.1.bn1": 0.2, "layer2.1.bn2": 0.2, "layer3.1.bn1": 0.5, "layer3.1.bn2": 0.5}
    mean_gamma = {n: 0.5 for n in sparsity_} | {"layer3.1.bn1": 0.1}
    assert rank_blocks(["layer1.0", "layer1.1", "layer2.1", "layer3.1", "layer3.2"], sparsity_, mean_gamma) == [
        "layer1.1", "layer3.1", "layer1.0", "layer2.1", "layer3.2"]  # sparser first; tie → smaller γ; unscored last


def test_removed_block_is_the_identity_shortcut():
    net, shape = crafted_resnet20(dead=())
    net.train()
    with torch.no_grad():
        net(torch.randn(32, *shape[1:]))  # non-trivial BN statistics
    net.eval()
    blocks = ["layer1.2", "layer2.1"]
    zeroed = copy.deepcopy(net)
    with torch.no_grad():
        for block in blocks:  # γ = β = 0 in the last BN: the branch adds exactly 0
            zeroed.get_submodule(block).bn2.weight.zero_()
            zeroed.get_submodule(block).bn2.bias.zero_()
    removed = remove_blocks(copy.deepcopy(net), blocks)
    assert isinstance(removed.layer1[2], torch.nn.Identity) and isinstance(removed.layer2[1], torch.nn.Identity)
    x = torch.randn(4, *shape[1:])
    with torch.no_grad():
        assert removed(x).shape == net(x).shape == (4, 10)
        assert torch.equal(removed(x), zeroed(x))
        assert not torch.allclose(removed(x), net(x))
    with pytest.raises(ValueError, match="cannot remove block 'layer2.0' \\(BasicBlock\\)"):
        remove_blocks(net, ["layer2.0"])  # stride 2, 16 → 32 channels
    with pytest.raises(ValueError, match="layer9.1.*no module"):
        remove_blocks(net, ["layer9.1"])


def test_cost_prediction_without_removed_layers():
    net, shape = build_model("resnet20", input_shape=SHAPE16)
    space = build_layer_space(net, shape)
    removed = block_layers(space, ["layer1.1", "layer3.2"])
    assert removed == ["layer1.1.conv1", "layer1.1.conv2", "layer3.2.conv1", "layer3.2.conv2"]
    widths = {"layer2.1.conv1:out": 9, "conv1:out": 12}
    layers = layer_cost_model(space)
    full, without = layers.predict([widths])[0], layers.predict([widths], removed)[0]
    per_layer = layers.layer_costs(widths)
    assert without < full
    assert without == pytest.approx(sum(c for name, c in per_layer.items() if name not in removed))
    assert full == pytest.approx(sum(per_layer.values()))
    network = network_cost_model(space)
    assert network.predict([widths], removed)[0] < network.predict([widths])[0]
    assert network.predict([widths], ())[0] == network.predict([widths])[0]  # nothing removed: as before
    groups, cost = differentiable_cost(network, removed)
    w = torch.tensor([float({**space.dense_widths(), **widths}[g]) for g in groups], requires_grad=True)
    value = cost(w)
    value.backward()
    assert value.item() == pytest.approx(network.predict([widths], removed)[0])
    assert w.grad[groups.index("layer1.1.conv1:out")] == 0  # a removed layer's width costs nothing
    assert network_macs(space, widths, removed) < network_macs(space, widths)
    with pytest.raises(ValueError, match="unknown layer.*layer9.0.conv1"):
        network.predict([widths], ["layer9.0.conv1"])


KEPT20 = {"layer1.0.conv1:out": [0, 3, 5, 9], "layer3.1.conv1:out": list(range(0, 64, 3)),
          "conv1:out": list(range(1, 16, 2))}


@pytest.fixture
def saved_joint(tmp_path):
    """resnet20 with channels removed (residual stream included) and two blocks replaced by identity, saved."""
    torch.manual_seed(2)
    net, shape = build_model("resnet20", input_shape=SHAPE16)
    space = build_layer_space(net, shape)
    kept = {g: idx for g, idx in KEPT20.items() if g in space.dense_widths()}
    pruned = apply_pruning(net, space, kept, ["layer1.1", "layer3.2"]).train()
    with torch.no_grad():
        pruned(torch.randn(16, *shape[1:]))
    pruned.eval()
    save_compressed(tmp_path / "m", pruned, "resnet20", shape, kept, {"method": "joint"},
                    blocks_removed=["layer1.1", "layer3.2"])
    return tmp_path / "m", pruned, shape, kept


def test_artifact_round_trip_with_removed_blocks(saved_joint):
    model_dir, pruned, shape, kept = saved_joint
    loaded, info = load_compressed(model_dir)
    assert info["version"] == 2 and info["blocks_removed"] == ["layer1.1", "layer3.2"] and info["kept"] == kept
    assert isinstance(loaded.layer1[1], torch.nn.Identity) and isinstance(loaded.layer3[2], torch.nn.Identity)
    x = torch.randn(8, *shape[1:])
    with torch.no_grad():
        assert torch.equal(loaded(x), pruned(x))
    assert not any(k.startswith(("layer1.1.", "layer3.2.")) for k in torch.load(model_dir / "weights.pt"))
    info_path = model_dir / "channels.json"
    spec = json.loads(info_path.read_text())
    info_path.write_text(json.dumps({**spec, "blocks_removed": ["layer2.0"]}))
    with pytest.raises(ArtifactError, match="does not fit resnet20: cannot remove block 'layer2.0'"):
        load_compressed(model_dir)
    info_path.write_text(json.dumps({**spec, "blocks_removed": "layer1.1"}))
    with pytest.raises(ArtifactError, match="'blocks_removed' must be a list"):
        read_info(model_dir)


def test_version1_artifact_still_loads(tmp_path):
    torch.manual_seed(3)
    net, shape = build_model("demo_cnn", widths=(16, 32, 32))
    space = build_layer_space(net, shape)
    kept = {"conv1:out": [0, 2, 5, 7, 11]}
    pruned = apply_kept(net, space, kept).eval()
    save_compressed(tmp_path / "v1", pruned, "demo_cnn", shape, kept, {"method": "uniform"},
                    model_kwargs={"widths": [16, 32, 32]})
    path = tmp_path / "v1" / "channels.json"
    spec = json.loads(path.read_text())
    del spec["blocks_removed"]  # exactly what version 1 wrote
    path.write_text(json.dumps({**spec, "version": 1}))
    loaded, info = load_compressed(tmp_path / "v1")
    assert info["version"] == 1 and info["blocks_removed"] == []
    x = torch.randn(4, *shape[1:])
    with torch.no_grad():
        assert torch.equal(loaded(x), pruned(x))


def test_prune_joint_removes_the_dead_blocks_and_meets_the_budget():
    net, shape = crafted_resnet20()
    space = build_layer_space(net, shape)
    cost = layer_cost_model(space)
    dense = cost.predict([{}])[0]
    settings = JointSettings(sparse_epochs=0)  # the crafted γ are already polarized
    result = prune_joint(copy.deepcopy(net), space, cost, 0.5 * dense, None, settings)
    assert sorted(result.blocks_removed) == sorted(DEAD)  # free to remove (no live γ) and saves cost
    assert result.ranking[:2] == list(DEAD) and result.scale == 1.0
    assert result.predicted_cost <= 0.5 * dense
    assert result.predicted_cost == pytest.approx(cost.predict([result.widths], result.removed_layers)[0])
    assert not set(result.kept) & {"layer1.1.conv1:out", "layer3.1.conv1:out"}  # groups gone with their block
    # Channels whose γ sits in the spike at 0.002 go; the others stay.
    assert result.kept["layer2.1.conv1:out"] == torch.nonzero(net.layer2[1].bn1.weight > 0.1).flatten().tolist()
    split = result.split
    assert split["depth_saving"] > 0 and split["width_saving"] > 0
    assert split["depth_saving"] + split["width_saving"] == pytest.approx(dense - result.predicted_cost)
    # A tight budget needs the thresholds scaled up (live channels go too); channel-only removes no block.
    tight = prune_joint(copy.deepcopy(net), space, cost, 0.2 * dense, None, settings)
    assert tight.predicted_cost <= 0.2 * dense and tight.scale > 1.0
    # The closed loop's re-plan from the same γ gives the plan a fresh search gives.
    again = replan(result, space, 0.2 * dense)
    assert (again.widths, again.blocks_removed, again.scale) == (tight.widths, tight.blocks_removed, tight.scale)
    assert [r for r in again.history if r["phase"] == "plan"] == [r for r in tight.history if r["phase"] == "plan"]
    slim = prune_joint(copy.deepcopy(net), space, cost, 0.2 * dense, None, JointSettings(sparse_epochs=0,
                                                                                           max_blocks=0))
    assert slim.blocks_removed == [] and slim.predicted_cost <= 0.2 * dense and slim.split["depth_saving"] == 0
    with pytest.raises(InfeasibleBudget, match="below the floor"):
        prune_joint(copy.deepcopy(net), space, cost, 0.001 * dense, None, settings)
    pruned = apply_pruning(net, space, tight.kept, tight.blocks_removed)
    assert network_macs(space, tight.widths, tight.removed_layers) == measured_macs(pruned, shape)


def measured_macs(model, shape):
    """MACs of the conv/linear layers that actually run, counted from their real shapes in one forward pass."""
    total = []

    def hook(mod, inp, out):
        total.append(mod.weight[0].numel() * out[0].numel() if isinstance(mod, torch.nn.Conv2d) else
                     mod.in_features * mod.out_features)

    hooks = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (torch.nn.Conv2d,
                                                                                        torch.nn.Linear))]
    with torch.no_grad():
        model(torch.randn(*shape))
    for h in hooks:
        h.remove()
    return sum(total)


@pytest.fixture
def joint_workspace(tmp_path):
    """A small random 16x16 RGB npz, the crafted resnet20 checkpoint, and a cost model already on file for this
    device and architecture (so compress does not calibrate)."""
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(10), 16)
    x = (rng.integers(0, 60, (len(y), 16, 16, 3)) + 18 * y[:, None, None, None]).astype(np.uint8)
    np.savez(tmp_path / "tiny.npz", x=x, y=y)
    net, shape = crafted_resnet20()
    torch.save(net.state_dict(), tmp_path / "dense.pt")
    space = build_layer_space(net, shape)
    fingerprint = open_device("local").info()["fingerprint_id"]
    provenance = {"device": {"name": "local", "fingerprint_id": fingerprint},
                  "model": {"name": "resnet20", "architecture_hash": architecture_hash(space)},
                  "fitted_at": "synthetic (test)"}
    layer_cost_model(space).save(default_model_path("local", "resnet20", "onnxruntime", 1, "latency", shape),
                                 provenance)
    return tmp_path


def test_compress_joint_cli_reports_blocks_and_channels(joint_workspace):
    tmp = joint_workspace
    proc = run_cli("compress", "--model", "resnet20", "--weights", tmp / "dense.pt", "--data",
                   f"npz:{tmp / 'tiny.npz'}", "--budget", "0.6", "--method", "joint", "--epochs", "1",
                   "--sparse-epochs", "1", "--out", tmp / "out", "--gamma-histograms", tmp / "gamma.png", "--json")
    s = json.loads(proc.stdout)
    assert s["method"] == "joint" and s["predicted_cost"] <= s["budget_abs"] + 1e-12
    assert sorted(s["blocks_removed"]) == sorted(DEAD)
    dense = build_layer_space(*build_model("resnet20", input_shape=SHAPE16)).dense_widths()
    widths = s["compressed"]["widths"]
    assert s["channels_removed"] == sum(dense[g] - w for g, w in widths.items()) > 0
    assert s["compressed"]["macs"] < s["dense"]["macs"]
    split = s["saving_split"]["predicted"]
    assert split["depth_share"] + split["width_share"] == pytest.approx(1.0) and split["depth_share"] > 0
    assert (tmp / "gamma.png").stat().st_size > 0
    assert (tmp / "out" / "sparse-checkpoints" / "last.pt").is_file()
    assert "sparse training" in proc.stderr  # its progress bar, on stderr under --json
    model, info = load_compressed(s["artifacts"]["model_dir"])
    assert info["blocks_removed"] == s["blocks_removed"] and info["widths"] == s["compressed"]["widths"]
    assert all(isinstance(model.get_submodule(b), torch.nn.Identity) for b in s["blocks_removed"])
    assert model(torch.zeros(1, 3, 16, 16)).shape == (1, 10) and s["parity"]["passed"]


def test_missing_matplotlib_fails_before_sparse_training(monkeypatch, tmp_path):
    import builtins

    import edgeprune.prune.joint.method as method
    from edgeprune.prune.joint.histograms import PlottingUnavailable

    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name.startswith("matplotlib"):
            raise ImportError("No module named 'matplotlib'")
        return real_import(name, *args, **kwargs)

    trained = []
    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    monkeypatch.setattr(method, "sparse_train", lambda *a, **k: trained.append(1) or [])
    model, shape = build_model("resnet20")
    space = build_layer_space(model, shape)
    with pytest.raises(PlottingUnavailable, match="pip install 'edgeprune\\[bench\\]'"):
        prune_joint(model, space, None, 1.0, None, JointSettings(histogram_png=str(tmp_path / "g.png")))
    assert not trained
