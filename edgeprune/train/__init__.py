"""Training: evaluation, fine-tuning with cosine schedule, resumable checkpoints, distillation, torchrun/DDP."""

from .batchnorm import recalibrate_bn
from .checkpoint import CHECKPOINT_NAME, CheckpointError, load_checkpoint
from .distill import kd_loss
from .evaluate import TrainError, evaluate
from .trainer import TrainResult, fine_tune, train_from_scratch
from .schedule import CosineWarmup

__all__ = [
    "CHECKPOINT_NAME",
    "CheckpointError",
    "CosineWarmup",
    "TrainError",
    "TrainResult",
    "evaluate",
    "fine_tune",
    "kd_loss",
    "load_checkpoint",
    "recalibrate_bn",
    "train_from_scratch",
]
