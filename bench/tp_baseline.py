"""External baseline for the compression benchmark: Torch-Pruning's own global group-magnitude pruner, its ratio
bisected until the pruned model's *measured* latency matches the budget, then the same fine-tuning as edgeprune."""
from __future__ import annotations

import copy
import statistics
import warnings

import torch
import torch.nn as nn
import torch_pruning as tp

from edgeprune.formats import to_onnx_bytes
from edgeprune.measure.settings import MeasureSettings
from edgeprune.models.resnet_cifar import PadShortcut
from edgeprune.models.tracing import PadShortcutPruner

TOLERANCE = 0.03  # measured latency within ±3 % of the budget
MAX_RATIO = 0.95


def tp_prune(net: nn.Module, shape: tuple[int, ...], ratio: float) -> nn.Module:
    """A copy of ``net`` pruned by torch-pruning's MetaPruner: global ranking, group L2 magnitude, classifier kept."""
    model = copy.deepcopy(net).eval()
    classifier = [m for m in model.modules() if isinstance(m, nn.Linear)][-1:]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pruner = tp.pruner.MetaPruner(model, torch.zeros(*shape), importance=tp.importance.GroupMagnitudeImportance(p=2),
                                      global_pruning=True, pruning_ratio=ratio, ignored_layers=classifier,
                                      customized_pruners={PadShortcut: PadShortcutPruner()})
        pruner.step()
    return model


def measured_ms(device, model: nn.Module, shape: tuple[int, ...], threads: int = 1) -> float:
    """Median latency of ``model`` on ``device`` (onnxruntime)."""
    result = device.measure(to_onnx_bytes(model, shape), "onnxruntime", MeasureSettings(threads=threads))
    return result.latency.median


def ratio_to_dense(device, model_onnx: bytes, dense_onnx: bytes, rounds: int = 3) -> float:
    """Median of (model ÷ dense) latency, the two measured alternately ``rounds`` times so machine drift cancels."""
    settings = MeasureSettings(threads=1)
    ratios = [device.measure(model_onnx, "onnxruntime", settings).latency.median
              / device.measure(dense_onnx, "onnxruntime", settings).latency.median for _ in range(rounds)]
    return statistics.median(ratios)


def prune_to_measured_budget(net: nn.Module, shape: tuple[int, ...], device, budget_fraction: float,
                             max_tries: int = 14) -> tuple[nn.Module, dict]:
    """Bisect the pruning ratio until the measured latency, as a fraction of dense measured alongside, is within
    ±3 % of ``budget_fraction`` (or the tries run out; then the closest in-budget try). Returns the pruned model and
    the search record."""
    dense_onnx = to_onnx_bytes(net, shape)
    lo, hi = 0.0, MAX_RATIO
    tries, best = [], None
    for _ in range(max_tries):
        ratio = (lo + hi) / 2
        model = tp_prune(net, shape, ratio)
        over = ratio_to_dense(device, to_onnx_bytes(model, shape), dense_onnx, rounds=1) / budget_fraction
        tries.append({"ratio": ratio, "measured_over_budget": over})
        if over <= 1 + TOLERANCE and (best is None or abs(over - 1) < abs(best[1] - 1)):
            best = (model, over, ratio)
        if abs(over - 1) <= TOLERANCE:
            break
        lo, hi = (ratio, hi) if over > 1 else (lo, ratio)
    if best is None:
        best = (model, over, ratio)
    return best[0], {"ratio": best[2], "measured_over_budget": best[1], "within_tolerance": abs(best[1] - 1)
                     <= TOLERANCE, "tries": tries}
