"""Knowledge distillation from a teacher checkpoint (KL on logits), as in Real-to-Binary and
ReActNet's two-stage recipes.

loss = (1 - weight) * CE(student, y) + weight * T^2 * KL(softmax(teacher/T) || softmax(student/T))

The teacher is rebuilt from the config saved in its checkpoint, frozen, kept in eval mode and
not saved in the student's checkpoints."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class DistillConfig:
    teacher: Optional[str] = None  # run directory or checkpoint of the teacher; null = no distillation
    temperature: float = 1.0
    weight: float = 1.0  # share of the KL term; 1.0 = KL only (ReActNet), 0.5 = half CE

    def __post_init__(self) -> None:
        if not self.temperature > 0:
            raise ValueError(f"distill.temperature must be > 0, got {self.temperature}")
        if not 0 <= self.weight <= 1:
            raise ValueError(f"distill.weight must be in [0, 1], got {self.weight}")


def distillation_loss(student: torch.Tensor, teacher: torch.Tensor, target: torch.Tensor, cfg: DistillConfig) -> torch.Tensor:
    t = cfg.temperature
    kl = F.kl_div(F.log_softmax(student / t, dim=1), F.log_softmax(teacher / t, dim=1), log_target=True,
                  reduction="batchmean") * (t * t)
    if cfg.weight >= 1.0:
        return kl
    return (1 - cfg.weight) * F.cross_entropy(student, target) + cfg.weight * kl


def load_teacher(source: str, num_classes: int) -> nn.Module:
    """Rebuild the teacher network from its checkpoint's saved config and load its weights
    (:func:`binexp.checkpoint.build_network`: a weights-only load, the class count checked)."""
    from binexp import checkpoint

    path = checkpoint.locate(source, "distill.teacher")
    teacher = checkpoint.build_network(checkpoint.load(path, "distill.teacher"), path, "distill.teacher", num_classes)
    teacher.eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher
