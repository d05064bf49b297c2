"""How long a training step takes here: the basis of the time estimates printed before long phases."""
from __future__ import annotations

import copy
import time

import torch
import torch.nn.functional as F
from torch import nn

from .evaluate import model_device

__all__ = ["seconds_per_step"]


def seconds_per_step(model: nn.Module, loader, teacher: nn.Module | None = None, steps: int = 2) -> float:
    """Median wall time of a forward + backward pass on one training batch (on a copy: ``model`` is untouched),
    plus the teacher's forward pass when distilling."""
    net = copy.deepcopy(model).train()
    device = model_device(net)
    batch = next(iter(loader))
    x, y = batch[0].to(device), batch[1].to(device)
    times = []
    for _ in range(steps + 1):  # the first pass warms up allocators and kernels
        tick = time.perf_counter()
        if teacher is not None:
            with torch.no_grad():
                teacher(x)
        F.cross_entropy(net(x), y).backward()
        times.append(time.perf_counter() - tick)
    return sorted(times[1:])[len(times[1:]) // 2]
