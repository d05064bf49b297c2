"""A few optimiser steps on fixed batches and accuracy on a held-out slice: NetAdapt's quick proposal check."""
from __future__ import annotations

import itertools
import math

import torch
from torch import nn

from edgeprune.train.evaluate import TrainError
from edgeprune.train.objective import EvalFn, LossFn, batch_loss, score


def take_batches(loader, n: int) -> list:
    """The first ``n`` batches of ``loader``, passing over it again as often as needed (``n`` ≥ 1)."""
    if n < 1:
        raise ValueError(f"need at least one batch, got n={n}")
    batches: list = []
    while len(batches) < n:
        before = len(batches)
        batches.extend(itertools.islice(iter(loader), n - len(batches)))
        if len(batches) == before:
            raise TrainError("the loader yields no batches")
    return batches


def short_tune(model: nn.Module, batches: list, lr: float = 0.01, momentum: float = 0.9,
               weight_decay: float = 5e-4, loss_fn: LossFn | None = None) -> float:
    """One SGD step per batch (in place; model left in eval mode); return the mean training loss."""
    if not batches:
        return float("nan")
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    model.train()
    total = 0.0
    for batch in batches:
        loss = batch_loss(model, batch, loss_fn)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += float(loss.detach())
    model.eval()
    mean = total / len(batches)
    if not math.isfinite(mean):
        raise TrainError(f"short fine-tune diverged (mean loss {mean}); lower the learning rate")
    return mean


def holdout_accuracy(model: nn.Module, batches: list, eval_fn: EvalFn | None = None) -> float:
    """Top-1 accuracy (or ``eval_fn``'s score) on the held-out batches."""
    return float(score(model, batches, eval_fn)["accuracy"])
