"""How long a training step takes here: the basis of the time estimates printed before long phases."""
from __future__ import annotations

import copy
import time

import torch
from torch import nn

from .evaluate import model_device
from .objective import LossFn, task_loss, to_device

__all__ = ["seconds_per_step"]


def seconds_per_step(model: nn.Module, loader, teacher: nn.Module | None = None, steps: int = 2,
                     loss_fn: LossFn | None = None) -> float:
    """Median wall time of a forward + backward pass on one training batch (on a copy: ``model`` is untouched),
    plus the teacher's forward pass when distilling."""
    net = copy.deepcopy(model).train()
    device = model_device(net)
    batch = next(iter(loader))
    x, y = batch[0].to(device), to_device(batch[1], device)
    times = []
    for _ in range(steps + 1):  # the first pass warms up allocators and kernels
        tick = time.perf_counter()
        if teacher is not None:
            with torch.no_grad():
                teacher(x)
        task_loss(net(x), y, loss_fn).backward()
        times.append(time.perf_counter() - tick)
    return sorted(times[1:])[len(times[1:]) // 2]
