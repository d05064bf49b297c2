"""Knowledge-distillation loss: temperature-softened KL to a teacher mixed with cross-entropy."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["kd_loss"]


def kd_loss(student: torch.Tensor, teacher: torch.Tensor, target: torch.Tensor, temperature: float = 4.0,
            alpha: float = 0.5) -> torch.Tensor:
    """alpha * T² * KL(teacher_T || student_T) + (1 - alpha) * CE(student, target) (Hinton et al. 2015)."""
    soft = F.kl_div(F.log_softmax(student / temperature, dim=1), F.log_softmax(teacher / temperature, dim=1),
                    reduction="batchmean", log_target=True)
    return alpha * temperature**2 * soft + (1.0 - alpha) * F.cross_entropy(student, target)
