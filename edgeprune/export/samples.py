"""Real input samples and labels drawn from a data loader, for parity checks, calibration and accuracy."""
from __future__ import annotations

import torch


def take_samples(loader, n: int) -> torch.Tensor:
    """The first ``n`` inputs the loader yields (fewer if it runs out)."""
    xs, total = [], 0
    for x, _ in loader:
        xs.append(x)
        total += len(x)
        if total >= n:
            break
    return torch.cat(xs)[:n]


def take_labelled(loader, n: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and labels of the loader, at most ``n`` of them (all when ``n`` is None)."""
    xs, ys, total = [], [], 0
    for x, y in loader:
        xs.append(x)
        ys.append(y)
        total += len(x)
        if n is not None and total >= n:
            break
    x, y = torch.cat(xs), torch.cat(ys)
    return (x, y) if n is None else (x[:n], y[:n])
