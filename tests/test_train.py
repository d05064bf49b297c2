"""Tests for edgeprune.train: evaluation, fine-tuning on real data, checkpoint/resume, distillation, schedule."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from edgeprune.data import DataBundle, load_data
from edgeprune.models import build_model
from edgeprune.train import (
    CHECKPOINT_NAME,
    CheckpointError,
    CosineWarmup,
    TrainError,
    evaluate,
    fine_tune,
    kd_loss,
    load_checkpoint,
    train_from_scratch,
)

CIFAR_JPEG = Path("/work/shared/data/cifar10-jpeg")
RESNET20 = Path("/work/shared/data/pretrained/cifar-resnet/resnet20-12fca82f.th")


class Interrupted(Exception):
    """Raised from a progress callback to simulate a killed run."""


@pytest.fixture(scope="module")
def digits() -> DataBundle:
    return load_data("digits", batch_size=128)


@pytest.fixture(scope="module")
def trained_demo(digits):
    """demo_cnn trained from scratch on digits for 10 epochs (also the demo's timing check)."""
    torch.manual_seed(0)
    model, _ = build_model("demo_cnn")
    before = evaluate(model, digits.val)["accuracy"]
    tick = time.perf_counter()
    result = train_from_scratch(model, digits, 10)
    return result, before, time.perf_counter() - tick


@pytest.fixture
def small_images(tmp_path) -> DataBundle:
    """64 random 32×32 RGB images in 4 classes: exercises augmentation (and its RNG) during training."""
    rng = np.random.default_rng(0)
    path = tmp_path / "imgs.npz"
    np.savez(path, x=rng.integers(0, 256, (64, 32, 32, 3), dtype=np.uint8), y=np.arange(64) % 4)
    return load_data(f"npz:{path}", batch_size=16, val_fraction=0.25)


def _fresh(name: str = "demo_cnn", seed: int = 0, **kwargs) -> nn.Module:
    torch.manual_seed(seed)
    return build_model(name, **kwargs)[0]


def _assert_same_weights(a: nn.Module, b: nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.allclose(sa[key].float(), sb[key].float(), atol=1e-6, rtol=0), key


# --- evaluate ----------------------------------------------------------------------------------------------------


class _Lookup(nn.Module):
    """Predicts the class written in pixel (0, 0) of channel 0, with logit margin 2."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 2.0 * F.one_hot(x[:, 0, 0, 0].long(), 3).float()


def test_evaluate_counts_and_loss_on_a_known_model():
    predicted = torch.tensor([0, 1, 2, 0, 1, 2, 0])
    labels = torch.tensor([0, 1, 2, 1, 1, 0, 0])  # 5 of 7 right
    x = predicted.float().view(-1, 1, 1, 1).expand(-1, 1, 2, 2).contiguous()
    model = _Lookup().train()
    out = evaluate(model, DataLoader(TensorDataset(x, labels), batch_size=3))
    assert out["n"] == 7 and out["accuracy"] == pytest.approx(5 / 7)
    expected = F.cross_entropy(2.0 * F.one_hot(predicted, 3).float(), labels).item()
    assert out["loss"] == pytest.approx(expected, rel=1e-6)
    assert model.training  # mode restored


def test_evaluate_rejects_empty_loader_and_bad_outputs():
    empty = DataLoader(TensorDataset(torch.zeros(0, 1, 2, 2), torch.zeros(0, dtype=torch.long)), batch_size=2)
    with pytest.raises(TrainError, match="no examples"):
        evaluate(_Lookup(), empty)
    loader = DataLoader(TensorDataset(torch.zeros(4, 1, 2, 2), torch.zeros(4, dtype=torch.long)), batch_size=2)
    with pytest.raises(TrainError, match="not \\(batch, classes\\)"):
        evaluate(nn.Identity(), loader)


# --- fine-tuning -------------------------------------------------------------------------------------------------


def test_demo_cnn_learns_digits_quickly(trained_demo):
    result, before, _ = trained_demo
    assert before < 0.3
    assert result.final["accuracy"] >= 0.95, result.history
    assert [h["epoch"] for h in result.history] == list(range(1, 11))
    lrs = [h["lr"] for h in result.history]
    assert lrs[0] == pytest.approx(0.1) and all(a > b for a, b in zip(lrs, lrs[1:]))
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    assert result.device == "cpu"


def test_fine_tune_short_run_improves_accuracy(digits):
    model = _fresh()
    before = evaluate(model, digits.val)["accuracy"]
    seen = []
    result = fine_tune(model, digits, 3, lr=0.05, progress=seen.append)
    assert result.model is model and result.config["steps_per_epoch"] == len(digits.train)
    assert [r["epoch"] for r in seen] == [1, 2, 3]
    assert result.final["accuracy"] > before + 0.5, result.history


@pytest.mark.parametrize("which", ["digits", "augmented"])
def test_resume_after_interruption_matches_uninterrupted_run(tmp_path, digits, small_images, which):
    data, name = (digits, "demo_cnn") if which == "digits" else (small_images, "demo_cnn32")
    kwargs = {"lr": 0.05, "warmup_epochs": 0.5, "seed": 7}
    straight = fine_tune(_fresh(name), data, 3, checkpoint_dir=tmp_path / "a", **kwargs)

    def stop_after_two(record: dict) -> None:
        if record["epoch"] == 2:
            raise Interrupted

    with pytest.raises(Interrupted):
        fine_tune(_fresh(name), data, 3, checkpoint_dir=tmp_path / "b", progress=stop_after_two, **kwargs)
    assert load_checkpoint(tmp_path / "b" / CHECKPOINT_NAME)["epoch"] == 2
    resumed_model = _fresh(name, seed=123)  # different init: the weights must come from the checkpoint
    resumed = fine_tune(resumed_model, data, 3, checkpoint_dir=tmp_path / "b", **kwargs)
    assert resumed.resumed_from == 2 and len(resumed.history) == 3
    _assert_same_weights(straight.model, resumed_model)
    strip = [{k: v for k, v in h.items() if k != "seconds"} for h in straight.history]
    assert strip == [{k: v for k, v in h.items() if k != "seconds"} for h in resumed.history]
    assert resumed.final["accuracy"] == straight.final["accuracy"]


def test_checkpoint_is_weights_only_loadable_and_finished_runs_are_not_redone(tmp_path, digits):
    model = _fresh()
    fine_tune(model, digits, 1, max_steps_per_epoch=3, checkpoint_dir=tmp_path)
    raw = torch.load(tmp_path / CHECKPOINT_NAME, map_location="cpu", weights_only=True)
    assert raw["config"]["steps_per_epoch"] == 3 and raw["scheduler"]["last_epoch"] == 3
    assert {"model", "optimizer", "scheduler", "epoch", "history", "rng", "config"} <= raw.keys()
    assert isinstance(raw["rng"]["numpy"]["keys"], torch.Tensor)
    assert not list(tmp_path.glob("*.tmp"))  # atomic write leaves no temp files
    again = fine_tune(_fresh(seed=5), digits, 1, max_steps_per_epoch=3, checkpoint_dir=tmp_path)
    assert again.resumed_from == 1 and again.epochs == 1
    assert again.final["accuracy"] == pytest.approx(raw["history"][-1]["val_accuracy"])


def test_corrupt_checkpoint_is_an_error_naming_the_file(tmp_path, digits):
    good = tmp_path / "good"
    fine_tune(_fresh(), digits, 2, max_steps_per_epoch=2, checkpoint_dir=good)
    blob = (good / CHECKPOINT_NAME).read_bytes()
    for content in (b"not a checkpoint at all", blob[: len(blob) // 2]):
        bad = tmp_path / f"bad{len(content)}"
        bad.mkdir()
        (bad / CHECKPOINT_NAME).write_bytes(content)
        with pytest.raises(CheckpointError, match=f"{bad / CHECKPOINT_NAME}.*(corrupt|truncated)"):
            fine_tune(_fresh(), digits, 2, max_steps_per_epoch=2, checkpoint_dir=bad)
        assert (bad / CHECKPOINT_NAME).read_bytes() == content  # nothing overwritten


def test_checkpoint_from_other_settings_or_model_is_refused(tmp_path, digits):
    fine_tune(_fresh(), digits, 2, lr=0.05, max_steps_per_epoch=2, checkpoint_dir=tmp_path)
    with pytest.raises(CheckpointError, match="other settings.*lr: checkpoint 0.05 vs now 0.02"):
        fine_tune(_fresh(), digits, 3, lr=0.02, max_steps_per_epoch=2, checkpoint_dir=tmp_path)
    (tmp_path / CHECKPOINT_NAME).write_bytes((tmp_path / CHECKPOINT_NAME).read_bytes())
    torch.save({"model": {}}, tmp_path / "x.pt")
    with pytest.raises(CheckpointError, match="does not fit"):
        fine_tune(_fresh(widths=(8, 8, 8)), digits, 2, lr=0.05, max_steps_per_epoch=2, checkpoint_dir=tmp_path)
    with pytest.raises(CheckpointError, match="not a fine_tune checkpoint"):
        load_checkpoint(tmp_path / "x.pt")
    fresh = fine_tune(_fresh(), digits, 2, lr=0.02, max_steps_per_epoch=2, checkpoint_dir=tmp_path, resume=False)
    assert fresh.resumed_from is None


def test_bad_arguments_and_divergence(digits):
    for kwargs, match in (({"epochs": 0}, "epochs"), ({"epochs": 1, "lr": 0.0}, "lr"),
                          ({"epochs": 1, "kd_alpha": 2.0}, "kd_alpha"),
                          ({"epochs": 1, "max_steps_per_epoch": 0}, "max_steps_per_epoch")):
        with pytest.raises(TrainError, match=match):
            fine_tune(_fresh(), digits, **kwargs)
    with pytest.raises(TrainError, match="training loss is nan"):
        fine_tune(_fresh(), digits, 1, lr=1e12, max_steps_per_epoch=5)


# --- distillation and schedule -----------------------------------------------------------------------------------


def test_kd_loss_limits():
    logits, target = torch.randn(8, 10), torch.randint(0, 10, (8,))
    assert kd_loss(logits, torch.randn(8, 10), target, alpha=0.0).item() == pytest.approx(
        F.cross_entropy(logits, target).item())
    assert kd_loss(logits, logits.clone(), target, alpha=1.0).item() == pytest.approx(0.0, abs=1e-6)


def test_distillation_from_a_trained_teacher(trained_demo, digits):
    teacher = trained_demo[0].model
    teacher_state = {k: v.clone() for k, v in teacher.state_dict().items()}
    student = _fresh(widths=(8, 16, 16))
    result = fine_tune(student, digits, 4, lr=0.1, teacher=teacher, kd_temperature=3.0, kd_alpha=0.7)
    assert result.config["distill"] is True
    assert result.final["accuracy"] >= 0.85
    assert all(torch.equal(v, teacher.state_dict()[k]) for k, v in teacher_state.items())  # teacher untouched


def test_cosine_warmup_factors():
    sched = CosineWarmup(total=10, warmup=2, min_ratio=0.1)
    assert sched(0) == pytest.approx(0.5) and sched(1) == pytest.approx(1.0) and sched(2) == pytest.approx(1.0)
    assert sched(6) == pytest.approx(0.1 + 0.9 * 0.5)
    assert sched(10) == pytest.approx(0.1) and sched(50) == pytest.approx(0.1)


# --- pretrained model on the shared CIFAR-10 JPEG copy -----------------------------------------------------------


@pytest.mark.skipif(not (CIFAR_JPEG / "test.npz").is_file() or not RESNET20.is_file(),
                    reason="shared CIFAR-10 JPEG copy or pretrained ResNet-20 absent")
def test_pretrained_resnet20_on_jpeg_cifar():
    data = load_data(f"npz:{CIFAR_JPEG}", limit=1000)
    model, _ = build_model("resnet20", weights=RESNET20)
    out = evaluate(model, data.val)
    assert out["n"] == 1000 and out["accuracy"] >= 0.75


DDP_SCRIPT = '''
import sys, torch
from edgeprune.data import load_data
from edgeprune.models import build_model
from edgeprune.train import fine_tune
torch.set_num_threads(1)
torch.manual_seed(0)
model, _ = build_model("demo_cnn")
result = fine_tune(model, load_data("digits"), 2, lr=0.1, checkpoint_dir=sys.argv[1])
print("RESULT", result.config["world_size"], result.config["steps_per_epoch"], result.final["accuracy"])
'''


@pytest.mark.slow
def test_torchrun_two_cpu_processes(tmp_path):
    """DDP over gloo on CPU: shared shards, identical final model on every rank, one checkpoint."""
    import subprocess
    import sys

    script = tmp_path / "ddp.py"
    script.write_text(DDP_SCRIPT)
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           str(script), str(tmp_path / "ck")], capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [line.split() for line in proc.stdout.splitlines() if line.startswith("RESULT")]
    assert len(lines) == 2 and lines[0] == lines[1]
    assert lines[0][1:3] == ["2", "7"]  # 2 ranks, ceil(1617 / 2 / 128) steps each
    assert load_checkpoint(tmp_path / "ck" / CHECKPOINT_NAME)["epoch"] == 2
