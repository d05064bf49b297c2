"""Polarization regularizer on BN scaling factors and the sparse-training loop (resumable per epoch)."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn as nn
from torch.optim.lr_scheduler import LambdaLR

from edgeprune.progress import SILENT, Progress
from edgeprune.prune.joint.settings import JointSettings
from edgeprune.train import CosineWarmup
from edgeprune.train.checkpoint import CHECKPOINT_NAME, resume_training, rng_state, save_checkpoint
from edgeprune.train.evaluate import TrainError
from edgeprune.train.objective import task_loss


def polarization(gamma: torch.Tensor, t: float) -> torch.Tensor:
    """Σ_i t·|γ_i| − |γ_i − mean(γ)| over one layer's scaling factors (the mean is of the same layer)."""
    return (t * gamma.abs() - (gamma - gamma.mean()).abs()).sum()


def polarization_penalty(bns: list[nn.Module], t: float) -> torch.Tensor:
    """The regularizer summed over layers: each layer is polarized around its own mean."""
    return sum((polarization(bn.weight, t) for bn in bns), torch.zeros(()))


def clamp_gammas(bns: list[nn.Module], a: float) -> None:
    """Put every γ back into [0, a] (done after each optimizer step)."""
    with torch.no_grad():
        for bn in bns:
            bn.weight.clamp_(0.0, a)


def sparse_train(model: nn.Module, bns: dict[str, nn.Module], data, s: JointSettings,
                 checkpoint_dir: str | Path | None = None,
                 progress: Callable[[dict], None] | None = None, reporter: Progress = SILENT) -> list[dict]:
    """Train ``model`` in place on cross-entropy + weight decay + λ·polarization of ``bns``' γ, clamping γ to
    [0, a] after each step; a checkpoint per epoch lets an interrupted run resume. Returns per-epoch history."""
    if s.sparse_epochs == 0:
        return []
    layers = list(bns.values())
    steps = len(data.train) if s.max_steps_per_epoch is None else min(len(data.train), s.max_steps_per_epoch)
    if steps == 0:
        raise TrainError("the training loader yields no batches")
    optimizer = torch.optim.SGD(model.parameters(), lr=s.lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
    scheduler = LambdaLR(optimizer, CosineWarmup(s.sparse_epochs * steps))
    config = {"lam": s.lam, "t": s.t, "a": s.a, "epochs": s.sparse_epochs, "lr": s.lr, "steps_per_epoch": steps,
              "bns": sorted(bns)}
    path = Path(checkpoint_dir) / CHECKPOINT_NAME if checkpoint_dir is not None else None
    start, history = 0, []
    if path is not None and path.exists():
        start, history = resume_training(path, config, model, optimizer, scheduler)
    else:
        torch.manual_seed(0)
    clamp_gammas(layers, s.a)
    reporter.start("sparse training", (s.sparse_epochs - start) * steps)
    for epoch in range(start, s.sparse_epochs):
        if hasattr(getattr(data.train, "sampler", None), "set_epoch"):
            data.train.sampler.set_epoch(epoch)  # the epoch's shuffle order, so a resumed run sees the same data
        model.train()
        totals = torch.zeros(3, dtype=torch.float64)
        for step, (x, y) in enumerate(data.train):
            if step >= steps:
                break
            ce = task_loss(model(x), y, getattr(data, "loss_fn", None))
            reg = polarization_penalty(layers, s.t)
            loss = ce + s.lam * reg
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            clamp_gammas(layers, s.a)
            reporter.advance()
            totals += torch.tensor([ce.item(), reg.item(), 1.0], dtype=torch.float64)
        if not torch.isfinite(totals).all():
            raise TrainError(f"sparse training diverged in epoch {epoch + 1} (loss {totals[0] / totals[2]}); "
                             "lower lr or lam")
        record = {"epoch": epoch + 1, "ce": float(totals[0] / totals[2]), "polarization": float(totals[1] / totals[2])}
        history.append(record)
        if path is not None:
            save_checkpoint({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                             "scheduler": scheduler.state_dict(), "epoch": epoch + 1, "history": history,
                             "rng": rng_state(), "config": config}, path.parent)
        if progress:
            progress(dict(record))
    model.eval()
    return history
