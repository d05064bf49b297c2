"""Pruning schedules: AGP ramp, per-step widths, exact targets, dense kept indices, and the compress CLI."""
import json

import pytest
import torch

from conftest import FAST, run_cli
from edgeprune.pipeline import CompressConfig, compress
from edgeprune.data import load_data
from edgeprune.models.layer_space import build_layer_space
from edgeprune.models.zoo import build_model
from edgeprune.prune.artifact import load_compressed, save_compressed
from edgeprune.prune.importance import channel_importance, keep_top
from edgeprune.structure.physical import apply_kept
from edgeprune.prune.schedule import agp_sparsity, prune_on_schedule, schedule_widths, split_epochs
from edgeprune.train import evaluate

WIDTHS = (16, 32, 32)
TARGET = {"conv1:out": 5, "conv2:out": 9, "conv3:out": 32}


@pytest.fixture(scope="module")
def digits():
    return load_data("digits", batch_size=64)


@pytest.fixture
def dense():
    torch.manual_seed(0)
    model, shape = build_model("demo_cnn", widths=WIDTHS)
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(8, *shape[1:]))
    return model.eval(), build_layer_space(model, shape), shape


def test_agp_ramp_values():
    assert agp_sparsity(0, 4, 0.0, 0.8) == 0.0
    assert agp_sparsity(2, 4, 0.0, 0.8) == pytest.approx(0.7)  # 0.8 − 0.8 · (1/2)³
    assert agp_sparsity(1, 4, 0.1, 0.9) == pytest.approx(0.5625)  # 0.9 − 0.8 · (3/4)³
    assert agp_sparsity(4, 4, 0.1, 0.9) == pytest.approx(0.9)
    with pytest.raises(ValueError, match="outside 0..4"):
        agp_sparsity(5, 4, 0.0, 0.5)


def test_schedule_widths_ramp_to_the_final_widths():
    dense, final = {"a": 32, "b": 16}, {"a": 8, "b": 16}
    assert schedule_widths(dense, final, "oneshot", 5) == [final]
    assert [w["a"] for w in schedule_widths(dense, final, "iterative", 4)] == [26, 20, 14, 8]
    # AGP: width = 8 + 24 · (1 − t/4)³ → 18.125, 11, 8.375, 8
    assert [w["a"] for w in schedule_widths(dense, final, "agp", 4)] == [18, 11, 8, 8]
    assert all(w["b"] == 16 for w in schedule_widths(dense, final, "agp", 4))
    with pytest.raises(ValueError, match="unknown pruning schedule 'cosine'"):
        schedule_widths(dense, final, "cosine", 3)
    with pytest.raises(ValueError, match="positive integer"):
        schedule_widths(dense, final, "agp", 0)
    with pytest.raises(ValueError, match="1..dense"):
        schedule_widths(dense, {"a": 33}, "iterative", 2)


def test_split_epochs_keeps_the_total():
    assert split_epochs(5, 3) == [1, 2, 2]
    assert split_epochs(2, 3) == [0, 1, 1]
    assert split_epochs(6, 1) == [6]


@pytest.mark.parametrize("schedule,steps", [("iterative", 3), ("agp", 4)])
def test_schedule_reaches_the_targets_with_dense_kept_indices(dense, schedule, steps):
    model, space, shape = dense
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = prune_on_schedule(model, space, TARGET, None, schedule, steps, epochs=0)
    assert [r["widths"] for r in result.history] == schedule_widths(space.dense_widths(), TARGET, schedule, steps)
    assert {g: len(k) for g, k in result.kept.items()} == TARGET
    assert (result.model.conv1.out_channels, result.model.conv2.out_channels) == (5, 9)
    # Without fine-tuning the result is exactly the dense model with the composed indices kept.
    expected = apply_kept(model, space, result.kept).state_dict()
    assert all(torch.equal(t, expected[k]) for k, t in result.model.state_dict().items())
    # Re-ranking on the pruned model picks other channels than ranking the dense model once.
    assert result.kept != keep_top(channel_importance(model, space), TARGET)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_oneshot_is_the_criterion_top_channels_at_once(dense):
    model, space, _ = dense
    result = prune_on_schedule(model, space, TARGET, None, "oneshot", 3, epochs=0, criterion="bn")
    assert result.kept == keep_top(channel_importance(model, space, "bn"), TARGET)
    assert len(result.history) == 1
    with pytest.raises(ValueError, match="data to fine-tune on"):
        prune_on_schedule(model, space, TARGET, None, "iterative", 2, epochs=2)
    with pytest.raises(ValueError, match="needs training data"):
        prune_on_schedule(model, space, TARGET, None, "agp", 2, epochs=0, criterion="apoz")


def test_schedule_fine_tunes_between_steps_and_the_artifact_reloads(dense, digits, tmp_path):
    model, space, shape = dense
    result = prune_on_schedule(model, space, TARGET, digits, "agp", 2, epochs=3, criterion="taylor", batches=2,
                               lr=0.05, checkpoint_dir=tmp_path / "ckpt")
    assert [r["epochs"] for r in result.history] == [1, 2]
    assert all(r["accuracy"] > 0.3 for r in result.history)
    assert (tmp_path / "ckpt" / "step1").is_dir() and (tmp_path / "ckpt" / "step2").is_dir()
    save_compressed(tmp_path / "art", result.model, "demo_cnn", shape, result.kept, {"schedule": "agp"},
                    model_kwargs={"widths": list(WIDTHS)})
    loaded, info = load_compressed(tmp_path / "art")
    assert info["kept"] == result.kept
    x = next(iter(digits.val))[0]
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), result.model.eval()(x))


def test_compress_rejects_a_criterion_for_oneshot_ecc_and_unknown_schedules():
    with pytest.raises(ValueError, match="ADMM group norms"):
        compress(CompressConfig(method="ecc", criterion="l2"))
    with pytest.raises(ValueError, match="unknown pruning schedule"):
        compress(CompressConfig(method="uniform", schedule="gradual"))
    with pytest.raises(ValueError, match="criterion must be one of"):
        compress(CompressConfig(method="uniform", criterion="magnitude"))


def test_compress_cli_with_criterion_and_iterative_schedule(tmp_path):
    # A small calibration and fit first, so compress finds a cost model instead of running its full calibration.
    run_cli("calibrate", "--model", "demo_cnn", "--points", "8", "--network-variants", "8", *FAST, "--json")
    run_cli("fit", "--model", "demo_cnn", "--json")
    proc = run_cli("compress", "--data", "digits", "--metric", "latency", "--budget", "0.85", "--method", "uniform",
                   "--criterion", "apoz", "--schedule", "iterative", "--schedule-steps", "2", "--epochs", "2",
                   "--correction-rounds", "0",  # the schedule is under test, not the (noisy) closed loop
                   "--out", tmp_path / "out", "--json", timeout=600)
    s = json.loads(proc.stdout)
    assert s["criterion"] == "apoz" and s["schedule"]["name"] == "iterative" and s["schedule"]["steps"] == 2
    history = s["schedule"]["history"]
    assert [r["epochs"] for r in history] == [1, 1]
    assert history[-1]["widths"] == s["compressed"]["widths"]
    assert all(history[0]["widths"][g] >= w for g, w in s["compressed"]["widths"].items())
    assert history[0]["widths"] != history[-1]["widths"]
    assert s["predicted_cost"] <= s["budget_abs"] + 1e-12
    model, info = load_compressed(s["artifacts"]["model_dir"])
    assert info["meta"]["criterion"] == "apoz" and info["meta"]["schedule"]["name"] == "iterative"
    assert evaluate(model, load_data("digits").val)["accuracy"] == pytest.approx(s["compressed"]["accuracy"])
