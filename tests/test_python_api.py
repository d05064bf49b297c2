"""The Python API: the README's example runs as written, a two-head (detection-style) model compresses from Python
with loss_fn / eval_fn, and `import edgeprune` stays light."""
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

import edgeprune
from edgeprune.data import load_data
from edgeprune.measure.settings import MeasureSettings
from edgeprune.prune.halp import HalpSettings

README = Path(__file__).resolve().parent.parent / "README.md"
QUICK = MeasureSettings(warmup=1, min_repeats=3, min_duration_s=0.01)


def readme_example() -> str:
    """The first python block of the README's "## Python API" section."""
    section = README.read_text().split("\n## Python API\n", 1)[1].split("\n## ", 1)[0]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_python_api_example_runs(tmp_path, monkeypatch, capsys):
    code = readme_example()
    assert len(code.strip().splitlines()) <= 15
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(code, "README.md (Python API)", "exec"), namespace)
    result, onnx = namespace["result"], namespace["onnx"]
    assert result.measured > 0 and result.predicted > 0 and 0 <= result.accuracy <= 1
    assert all(w % 4 == 0 for w in result.widths.values())
    assert onnx["parity"]["passed"] and (tmp_path / "demo-compressed" / "model.onnx").is_file()
    assert result.model(torch.zeros(2, 1, 8, 8)).shape == (2, 10)
    assert result.accuracy > 0.5  # trained, pruned to 0.5 of dense and fine-tuned: well above chance (0.1)
    printed = capsys.readouterr().out.split()
    assert float(printed[-1]) > 0  # verify's measurement


class TwoHead(nn.Module):
    """A detection-style model: a shared backbone, a box head and a class head, returned as a tuple."""

    def __init__(self):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(1, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32)
        self.conv2, self.bn2 = nn.Conv2d(32, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64)
        self.box, self.cls = nn.Linear(64, 2), nn.Linear(64 * 16, 10)

    def forward(self, x):
        x = F.relu(self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))))
        return self.box(x.mean((2, 3))), self.cls(F.max_pool2d(x, 2).flatten(1))


class WithBoxes(Dataset):
    """digits with two targets: the class and the intensity centroid (x, y) of the image, in [-1, 1]."""

    def __init__(self, loader):
        batches = list(loader)  # one pass: the training loader shuffles anew on every pass
        self.x, self.y = torch.cat([b[0] for b in batches]), torch.cat([b[1] for b in batches])
        weight = self.x[:, 0] - self.x[:, 0].amin((1, 2), keepdim=True)
        grid = torch.linspace(-1, 1, 8)
        total = weight.sum((1, 2)).clamp(min=1e-6)
        self.box = torch.stack([(weight.sum(1) * grid).sum(1) / total, (weight.sum(2) * grid).sum(1) / total], 1)

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return self.x[i], (self.y[i], self.box[i])


def loss_fn(outputs, targets):
    boxes, logits = outputs
    labels, box = targets
    return F.cross_entropy(logits, labels) + F.mse_loss(boxes, box)


def eval_fn(model, batches):
    """Class accuracy, less the boxes' mean absolute error (both heads count)."""
    correct = n = err = 0.0
    for x, (labels, box) in batches:
        boxes, logits = model(x)
        boxes = boxes.detach()
        correct += float((logits.argmax(1) == labels).sum())
        err += float((boxes - box).abs().mean(1).sum())
        n += len(labels)
    return (correct - err) / n


class Phases:
    """A progress reporter that keeps, per phase, its total and the steps reported before it finished."""

    def __init__(self):
        self.seen: dict[str, list[int]] = {}
        self.phase = None

    def start(self, phase: str, total: int) -> None:
        self.phase = phase
        self.seen[phase] = [total, 0]

    def advance(self, steps: int = 1) -> None:
        assert self.phase is not None, f"{steps} step(s) reported outside any phase (after {list(self.seen)})"
        self.seen[self.phase][1] += steps

    def finish(self) -> None:
        self.phase = None


def test_two_head_model_compresses_from_python_with_loss_and_eval_hooks(tmp_path):
    torch.manual_seed(0)
    digits = load_data("digits", limit=800)
    train, val = WithBoxes(digits.train), WithBoxes(digits.val)
    model, x = TwoHead(), torch.zeros(1, 1, 8, 8)
    from edgeprune.data.python import python_bundle
    from edgeprune.train import train_from_scratch

    train_from_scratch(model, python_bundle(train, val, 64, loss_fn, eval_fn), 3, lr=0.05)  # trainer takes the hooks
    edgeprune.calibrate(model, x, points=4, network_variants=8, measure=QUICK)
    cost = edgeprune.fit(model, x)
    # Halfway between the floor (conv1 at one channel) and dense: feasible whatever this machine measures.
    dense, floor = cost.predict(), cost.predict({"conv1:out": 1})
    assert floor < dense, "the fitted cost model must see conv1's width"
    budget = f"{(floor + dense) / 2 / dense:.4f}"
    run = dict(train=train, val=val, loss_fn=loss_fn, eval_fn=eval_fn, cost_model=cost, budget=budget, method="halp",
               epochs=1, batch_size=64, out=str(tmp_path / "out"),
               settings=HalpSettings(steps=2, tune_steps=2, criterion_batches=1))
    phases = Phases()
    result = edgeprune.compress(model, progress=phases, **run)
    assert {"HALP", "closed-loop rounds (measured)", "fine-tuning"} <= set(phases.seen)
    for phase in ("export (compressed + dense ONNX)", "final measurement (compressed + dense)", "fine-tuning"):
        assert phases.seen[phase][1] == phases.seen[phase][0] > 0, (phase, phases.seen)  # a done phase shows n/n
    assert phases.seen["closed-loop rounds (measured)"][1] == len(result.summary["closed_loop"]["rounds"])
    # The heads feed the outputs: never pruned (conv2 is held fixed too: the class head reads it flattened).
    assert set(result.widths) == {"conv1:out"} and result.widths["conv1:out"] < 32
    boxes, logits = result.model(torch.zeros(3, 1, 8, 8))
    assert boxes.shape == (3, 2) and logits.shape == (3, 10)
    loader = DataLoader(val, batch_size=64)
    assert result.accuracy == pytest.approx(eval_fn(result.model.eval(), loader), abs=1e-6)
    assert result.accuracy > 0.5  # well above chance (0.1) after pruning and fine-tuning on both heads
    s = result.summary
    assert s["parity"]["passed"] and s["settings"]["steps"] == 2 and s["predicted_cost"] <= s["budget_abs"]
    exported = edgeprune.export(result, tmp_path / "saved" / "model.onnx")
    assert exported["parity"]["passed"]
    saved = result.save(tmp_path / "saved")
    again, info = edgeprune.load(saved, base=model)
    assert info["widths"] == result.widths
    assert torch.allclose(again(torch.ones(1, 1, 8, 8))[1], result.model(torch.ones(1, 1, 8, 8))[1])
    report = edgeprune.verify(saved / "model.onnx", cost_model=cost)
    assert report["predicted"] == pytest.approx(result.predicted) and report["measured"] > 0
    again = edgeprune.compress(model, **run)  # same module, data and settings: resumes the saved selection
    assert again.summary["resumed_selection"] and again.widths == result.widths


def test_compress_rejects_an_unknown_option_before_any_work():
    with pytest.raises(TypeError, match="unknown option"):
        edgeprune.compress("demo_cnn", data="digits", epoch=3)
    with pytest.raises(ValueError, match="--epochs must be >= 0"):  # before the (missing) data is looked for
        edgeprune.compress("demo_cnn", data="npz:missing.npz", epochs=-1)


def test_import_edgeprune_is_light_and_api_names_are_functions():
    code = "import sys, edgeprune; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "False\n"
    import edgeprune.export.artifact  # noqa: F401 -- importing the subpackages must not rebind the API names
    import edgeprune.verify.check  # noqa: F401

    assert edgeprune.export.__module__ == edgeprune.verify.__module__ == "edgeprune.api"
