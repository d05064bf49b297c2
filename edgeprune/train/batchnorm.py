"""Re-estimate BatchNorm running statistics after channels were removed (the old means/vars no longer fit)."""
from __future__ import annotations

import torch
from torch import nn

from .evaluate import model_device

__all__ = ["recalibrate_bn"]

DEFAULT_BN_BATCHES = 20


def recalibrate_bn(model: nn.Module, loader, batches: int = DEFAULT_BN_BATCHES) -> int:
    """Reset every BatchNorm's running stats and re-estimate them as a plain average over ``batches`` training
    batches (forward only, no weight changes); returns the number of batches used. The model is left in eval mode."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    if not norms or batches < 1:
        return 0
    saved = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average: every batch counts equally
    device = model_device(model)
    model.train()
    used = 0
    try:
        with torch.no_grad():
            for batch in loader:
                model(batch[0].to(device))
                used += 1
                if used >= batches:
                    break
    finally:
        for m, momentum in zip(norms, saved):
            m.momentum = momentum
        model.eval()
    return used
