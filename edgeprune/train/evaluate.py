"""Validation accuracy and loss of a classifier over a loader."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from edgeprune.errors import EdgepruneError
from edgeprune.models.tracing import model_device

__all__ = ["TrainError", "evaluate", "model_device"]


class TrainError(EdgepruneError):
    """Training or evaluation cannot go on (bad arguments, empty data, diverged loss)."""


def evaluate(model: nn.Module, loader: DataLoader, device: str | torch.device | None = None) -> dict:
    """Return {"accuracy", "loss" (mean cross-entropy), "n"} of `model` on `loader` in eval mode."""
    device = torch.device(device) if device is not None else model_device(model)
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    n = 0
    try:
        with torch.no_grad():
            for batch in loader:
                x, y = batch[0].to(device, non_blocking=True), batch[1].to(device, non_blocking=True)
                logits = model(x)
                if logits.dim() != 2 or logits.shape[0] != y.shape[0]:
                    raise TrainError(f"model output {tuple(logits.shape)} is not (batch, classes) for a batch of "
                                     f"{y.shape[0]} examples")
                loss_sum += F.cross_entropy(logits.float(), y, reduction="sum").double()
                correct += (logits.argmax(1) == y).sum()
                n += y.shape[0]
    finally:
        model.train(was_training)
    if n == 0:
        raise TrainError("the evaluation loader yielded no examples")
    return {"accuracy": int(correct) / n, "loss": float(loss_sum) / n, "n": n}
