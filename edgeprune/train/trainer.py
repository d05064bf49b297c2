"""fine_tune / train_from_scratch: SGD + cosine schedule, per-epoch atomic checkpoints, exact resume, optional KD."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR

from edgeprune.data import DataBundle
from edgeprune.progress import SILENT, Progress

from . import distributed
from .checkpoint import CHECKPOINT_NAME, resume_training, rng_state, save_checkpoint
from .distill import kd_loss
from .evaluate import TrainError
from .objective import LossFn, score, task_loss, to_device
from .schedule import CosineWarmup

__all__ = ["TrainResult", "fine_tune", "train_from_scratch"]


@dataclass
class TrainResult:
    """The trained model (same object, trained in place), per-epoch history and final validation metrics."""

    model: nn.Module
    # One dict per epoch: epoch, lr (at the epoch's first step), train_loss, train_accuracy, val_accuracy,
    # val_loss, seconds.
    history: list[dict]
    final: dict
    epochs: int
    resumed_from: int | None = None
    checkpoint: Path | None = None
    device: str = "cpu"
    seconds: float = 0.0
    config: dict = field(default_factory=dict)


def _steps_per_epoch(loader, max_steps: int | None) -> int:
    """Optimizer steps per epoch: the loader length, capped by max_steps."""
    try:
        n = len(loader)
    except TypeError:
        if max_steps is None:
            raise TrainError("the training loader has no length; pass max_steps_per_epoch") from None
        return max_steps
    if n == 0:
        raise TrainError("the training loader yields no batches")
    return n if max_steps is None else min(n, max_steps)


def _check_args(epochs: int, lr: float, kd_alpha: float, kd_temperature: float, max_steps: int | None) -> None:
    """Reject arguments that would make training meaningless."""
    if not isinstance(epochs, int) or epochs < 1:
        raise TrainError(f"epochs must be a positive integer, got {epochs!r}")
    if not lr > 0:
        raise TrainError(f"lr must be > 0, got {lr!r}")
    if not 0.0 <= kd_alpha <= 1.0 or not kd_temperature > 0:
        raise TrainError(f"kd_alpha must be in [0, 1] and kd_temperature > 0, got {kd_alpha}, {kd_temperature}")
    if max_steps is not None and max_steps < 1:
        raise TrainError(f"max_steps_per_epoch must be >= 1, got {max_steps}")


def _train_epoch(model, loader, optimizer, scheduler, steps: int, device, teacher, kd: tuple[float, float],
                 reporter: Progress, loss_fn: LossFn | None = None) -> dict:
    """One epoch of SGD steps; return mean loss and accuracy (classification only) over the examples seen."""
    model.train()
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    n = 0
    for step, batch in enumerate(loader):
        if step >= steps:
            break
        x, y = batch[0].to(device, non_blocking=True), to_device(batch[1], device)
        logits = model(x)
        if teacher is not None:
            with torch.no_grad():
                target_logits = teacher(x)
            loss = kd_loss(logits, target_logits, y, temperature=kd[0], alpha=kd[1])
        else:
            loss = task_loss(logits, y, loss_fn)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        loss_sum += loss.detach().double() * x.shape[0]
        if loss_fn is None:
            correct += (logits.detach().argmax(1) == y).sum()
        n += x.shape[0]
        reporter.advance()
    mean_loss = float(loss_sum) / max(n, 1)
    if n == 0 or not torch.isfinite(torch.tensor(mean_loss)):
        raise TrainError(f"training loss is {mean_loss} (diverged or no batches); lower lr or check the data "
                         "(the last completed epoch's checkpoint, if any, is kept)")
    return {"train_loss": mean_loss, "train_accuracy": int(correct) / n if loss_fn is None else None}


def fine_tune(
    model: nn.Module,
    data: DataBundle,
    epochs: int,
    lr: float = 0.01,
    *,
    momentum: float = 0.9,
    nesterov: bool = True,
    weight_decay: float = 5e-4,
    warmup_epochs: float = 0.0,
    min_lr: float = 0.0,
    checkpoint_dir: str | Path | None = None,
    resume: bool = True,
    teacher: nn.Module | None = None,
    kd_temperature: float = 4.0,
    kd_alpha: float = 0.5,
    max_steps_per_epoch: int | None = None,
    progress: Callable[[dict], None] | None = None,
    device: str | torch.device = "auto",
    seed: int | None = 0,
    reporter: Progress = SILENT,
    phase: str = "fine-tuning",
) -> TrainResult:
    """Train `model` in place (left in eval mode) for `epochs` epochs, validating after each; resumable."""
    _check_args(epochs, lr, kd_alpha, kd_temperature, max_steps_per_epoch)
    started = time.perf_counter()
    ctx = distributed.setup(device)
    model.to(ctx.device)
    if teacher is not None:
        teacher.to(ctx.device).eval()
    loader = distributed.distributed_loader(data.train, seed or 0, ctx.device) if ctx.active else data.train
    steps = _steps_per_epoch(loader, max_steps_per_epoch)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, nesterov=nesterov and momentum > 0,
                                weight_decay=weight_decay)
    warmup = round(warmup_epochs * steps)
    scheduler = LambdaLR(optimizer, CosineWarmup(epochs * steps, warmup, min_lr / lr))
    config = {"epochs": epochs, "lr": lr, "momentum": momentum, "nesterov": nesterov, "weight_decay": weight_decay,
              "warmup_epochs": warmup_epochs, "min_lr": min_lr, "steps_per_epoch": steps, "world_size": ctx.world_size,
              "distill": teacher is not None, "kd_temperature": kd_temperature, "kd_alpha": kd_alpha}
    path = Path(checkpoint_dir) / CHECKPOINT_NAME if checkpoint_dir is not None else None
    start, history, resumed_from = 0, [], None
    if path is not None and resume and path.exists():
        start, history = resume_training(path, config, model, optimizer, scheduler)
        resumed_from = start
    elif seed is not None:
        torch.manual_seed(seed)
    net = distributed.wrap(model, ctx)
    reporter.start(phase, (epochs - start) * steps)
    for epoch in range(start, epochs):
        tick = time.perf_counter()
        if hasattr(loader.sampler, "set_epoch"):
            loader.sampler.set_epoch(epoch)
        epoch_lr = optimizer.param_groups[0]["lr"]
        record = {"epoch": epoch + 1, "lr": epoch_lr,
                  **_train_epoch(net, loader, optimizer, scheduler, steps, ctx.device, teacher,
                                 (kd_temperature, kd_alpha), reporter, getattr(data, "loss_fn", None))}
        distributed.sync_buffers(model, ctx)
        val = score(model, data.val, getattr(data, "eval_fn", None), ctx.device)
        record.update(val_accuracy=val["accuracy"], val_loss=val["loss"], seconds=time.perf_counter() - tick)
        history.append(record)
        if path is not None and ctx.is_main:
            save_checkpoint({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                             "scheduler": scheduler.state_dict(), "epoch": epoch + 1, "history": history,
                             "rng": rng_state(), "config": config}, path.parent)
        distributed.barrier(ctx)
        if progress is not None and ctx.is_main:
            progress(dict(record))
    reporter.finish()
    if start < epochs:
        final = {"accuracy": history[-1]["val_accuracy"], "loss": history[-1]["val_loss"], "n": val["n"]}
    else:
        final = score(model, data.val, getattr(data, "eval_fn", None), ctx.device)
    model.eval()
    return TrainResult(model=model, history=history, final=final, epochs=len(history), resumed_from=resumed_from,
                       checkpoint=path, device=str(ctx.device), seconds=time.perf_counter() - started, config=config)


def train_from_scratch(model: nn.Module, data: DataBundle, epochs: int, lr: float = 0.1, **kwargs) -> TrainResult:
    """fine_tune with a from-scratch learning rate (default 0.1)."""
    return fine_tune(model, data, epochs, lr, **{"phase": "training", **kwargs})
