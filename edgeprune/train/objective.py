"""The training loss and the validation score: cross-entropy and top-1 accuracy, or the user's own hooks.

A detection or segmentation model (tuple or dict outputs, structured targets) is trained and judged through
``loss_fn(outputs, targets) -> scalar tensor`` and ``eval_fn(model, batches) -> float`` (higher is better), which a
DataBundle carries to every method that trains or ranks channels.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .evaluate import evaluate, model_device

LossFn = Callable[[Any, Any], torch.Tensor]
EvalFn = Callable[[nn.Module, Iterable], float]


def to_device(obj, device):
    """Tensors, and tuples, lists and dicts of them, moved to ``device``."""
    if isinstance(obj, torch.Tensor):
        return obj.to(device, non_blocking=True)
    if isinstance(obj, dict):
        return {k: to_device(v, device) for k, v in obj.items()}
    if isinstance(obj, (tuple, list)):
        return type(obj)(to_device(v, device) for v in obj)
    return obj


def task_loss(outputs, targets, loss_fn: LossFn | None = None) -> torch.Tensor:
    """``loss_fn(outputs, targets)``, or cross-entropy on class logits."""
    return F.cross_entropy(outputs, targets) if loss_fn is None else loss_fn(outputs, targets)


def batch_loss(model: nn.Module, batch, loss_fn: LossFn | None = None) -> torch.Tensor:
    """The loss of ``model`` on one (x, y, ...) batch, on the model's device."""
    device = model_device(model)
    return task_loss(model(batch[0].to(device)), to_device(batch[1], device), loss_fn)


def score(model: nn.Module, batches, eval_fn: EvalFn | None = None, device=None) -> dict:
    """{"accuracy", "loss", "n"} of ``model`` on a loader or list of batches: ``eval_fn``'s score as the accuracy
    (loss and n unknown: None), or top-1 accuracy and cross-entropy."""
    if eval_fn is None:
        return evaluate(model, batches, device)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            value = float(eval_fn(model, batches))
    finally:
        model.train(was_training)
    return {"accuracy": value, "loss": None, "n": None}
