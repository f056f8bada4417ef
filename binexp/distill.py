"""Knowledge distillation from a teacher checkpoint (KL on logits), as in Real-to-Binary and
ReActNet's two-stage recipes.

loss = (1 - weight) * CE(student, y) + weight * T^2 * KL(softmax(teacher/T) || softmax(student/T))

The teacher is rebuilt from the config saved in its checkpoint, frozen, kept in eval mode and
not saved in the student's checkpoints."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from binexp.config import DistillConfig, to_schema


def distillation_loss(student: torch.Tensor, teacher: torch.Tensor, target: torch.Tensor, cfg: DistillConfig) -> torch.Tensor:
    t = cfg.temperature
    kl = F.kl_div(F.log_softmax(student / t, dim=1), F.log_softmax(teacher / t, dim=1), log_target=True,
                  reduction="batchmean") * (t * t)
    if cfg.weight >= 1.0:
        return kl
    return (1 - cfg.weight) * F.cross_entropy(student, target) + cfg.weight * kl
