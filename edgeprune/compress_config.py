"""`edgeprune compress`'s settings, and the checks that run before anything is loaded or measured."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from edgeprune.prune.budget import check_budget
from edgeprune.prune.closed_loop import LoopSettings
from edgeprune.prune.importance import CRITERIA, DEFAULT_BATCHES
from edgeprune.prune.methods import get as get_method
from edgeprune.prune.schedule import check_schedule

ADMM_SHARE = 0.2  # default ADMM budget: this share of the fine-tuning epochs (so ADMM stays a minor phase)


@dataclass
class CompressConfig:
    """Everything `edgeprune compress` takes."""

    model: str = "demo_cnn"
    weights: str | None = None
    data: str = "digits"
    device: str = "local"
    metric: str = "latency"
    budget: str = "0.5"
    method: str = "ecc"
    epochs: int = 3
    out: str = "compressed"
    round_to: int | None = None
    distill: bool | None = None  # None: distil from the dense model whenever dense weights were given
    runtime: str = "onnxruntime"
    threads: int = 1
    # compress calibrates only when no cost model exists: a quick one (the closed loop measures anyway);
    # `edgeprune calibrate` takes more points for a more accurate model
    points: int = 20  # calibration points per signature
    network_variants: int = 20
    lr: float = 0.01
    batch_size: int = 128
    weight_decay: float = 5e-4
    warmup_epochs: float | None = None  # None: a tenth of the epochs, at most one
    data_limit: int | None = None
    admm_epochs: float | None = None  # ecc's ADMM / halp's between-step training budget; None: ADMM_SHARE × epochs
    settings: Any = None  # the method's own settings dataclass (prune.methods); None: its defaults
    criterion: str | None = None  # channel ranking (CRITERIA); None: l1, or ECC's ADMM norms for one-shot ecc
    criterion_batches: int = DEFAULT_BATCHES  # training batches the data-driven criteria (taylor, apoz) look at
    schedule: str = "oneshot"  # SCHEDULES: reach the method's widths at once, or over schedule_steps prune-tune steps
    schedule_steps: int = 3
    closed_loop: LoopSettings = field(default_factory=LoopSettings)  # measure, rescale the budget, re-select
    cost_model: str = "device"  # "platform": price widths with the device's platform model (fit --platform)


def criterion_of(cfg: CompressConfig, method) -> str:
    """The channel criterion of this run; a method may insist on its own (one-shot ecc: its ADMM group norms)."""
    if cfg.criterion is not None and cfg.criterion not in CRITERIA:
        raise ValueError(f"criterion must be one of {CRITERIA}, got {cfg.criterion!r}")
    check_schedule(cfg.schedule, cfg.schedule_steps)
    return method.criterion(cfg.criterion, cfg.schedule)


def tune_settings(cfg: CompressConfig) -> dict:
    """fine_tune's keyword arguments for this run (besides the teacher): lr, weight decay and warm-up."""
    warmup = cfg.warmup_epochs if cfg.warmup_epochs is not None else min(1.0, 0.1 * cfg.epochs)
    return {"lr": cfg.lr, "weight_decay": cfg.weight_decay, "warmup_epochs": warmup}


def check_numbers(cfg: CompressConfig) -> None:
    """ValueError naming the option of the first numeric setting out of its range."""
    at_least = {"epochs": (cfg.epochs, 0), "batch_size": (cfg.batch_size, 1), "weight_decay": (cfg.weight_decay, 0),
                "points": (cfg.points, 1), "network_variants": (cfg.network_variants, 0), "threads": (cfg.threads, 1),
                "criterion_batches": (cfg.criterion_batches, 1), "round_to": (cfg.round_to, 1),
                "warmup_epochs": (cfg.warmup_epochs, 0), "data_limit": (cfg.data_limit, 1)}
    for name, (value, low) in at_least.items():
        if value is not None and not value >= low:
            raise ValueError(f"--{name.replace('_', '-')} must be >= {low}, got {value}")
    for name, value in (("lr", cfg.lr), ("admm_epochs", cfg.admm_epochs)):
        if value is not None and not value > 0:
            raise ValueError(f"--{name.replace('_', '-')} must be > 0, got {value}")


def check_config(cfg: CompressConfig):
    """The method of ``cfg`` and the channel criterion of the run, after checking every setting and the budget's
    unit: before any data is loaded or anything calibrated."""
    method = get_method(cfg.method)
    if cfg.settings is not None and not isinstance(cfg.settings, method.settings):
        raise ValueError(f"method {cfg.method} takes settings of type {method.settings.__name__}, got "
                         f"{type(cfg.settings).__name__}")
    if cfg.cost_model not in ("device", "platform"):
        raise ValueError(f"--cost-model must be device or platform, got {cfg.cost_model!r}")
    check_numbers(cfg)
    check_budget(cfg.budget, cfg.metric)
    return method, criterion_of(cfg, method)
