"""Optimizer and learning-rate schedule from the ``schedule`` config group.

The LR is set once per epoch (as the official BNN codes do), as a factor of the base LR:

* ``rbnn_cosine``: the official RBNN CIFAR code under PyTorch 1.1: linear warm-up
  lr*(e+1)/W for e < W, then 0.5*(1 + cos(pi*(e - 2W + 1)/(E - W + 1))) - for W = 5 this is
  0.05*(1 + cos(pi*(e - 9)/(E - 4))) at lr 0.1: a ~0.1 plateau over epochs 5-13, ~9e-6 at the end.
* ``cosine``: warm-up, then 0.5*(1 + cos(pi*(e - W)/(E - W))) (ImageNet RBNN: W = 0).
* ``multistep``: warm-up, then gamma^(number of milestones <= e).
* ``linear``: 1 - e/E after warm-up (Bi-Real PyTorch, ReActNet, Real-to-Binary style).
* ``constant``.
E is the trainer's ``max_epochs``, so ``trainer.max_epochs=N`` rescales the whole schedule.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    import lightning.pytorch as L

LR_SCHEDULES = ("rbnn_cosine", "cosine", "multistep", "linear", "constant")
WEIGHT_DECAY_ON = ("all", "conv_weights")
OPTIMIZERS = ("sgd", "adam", "adamw")


@dataclass
class ScheduleConfig:
    name: str = "rbnn_cifar"
    epochs: int = 1000
    optimizer: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = False
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    weight_decay: float = 1e-4
    lr_schedule: str = "rbnn_cosine"
    warmup_epochs: int = 5
    milestones: list[int] = field(default_factory=list)
    gamma: float = 0.1
    label_smoothing: float = 0.0  # cross-entropy label smoothing (Bi-Real PyTorch recipe: 0.1)
    # which parameters get weight_decay: all | conv_weights (ReActNet's official train.py: every
    # 4-D parameter or one with "conv" in its name; BatchNorm, PReLU, biases and the classifier get none)
    weight_decay_on: str = "all"

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ValueError(f"schedule.epochs must be >= 1, got {self.epochs}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"schedule.optimizer={self.optimizer!r}; choose one of: {', '.join(OPTIMIZERS)}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"schedule.lr_schedule={self.lr_schedule!r}; choose one of: {', '.join(LR_SCHEDULES)}")
        if not self.lr > 0:
            raise ValueError(f"schedule.lr must be > 0, got {self.lr}")
        if self.weight_decay < 0:
            raise ValueError(f"schedule.weight_decay must be >= 0, got {self.weight_decay}")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"schedule.momentum must be in [0, 1), got {self.momentum}")
        if self.warmup_epochs < 0:
            raise ValueError(f"schedule.warmup_epochs must be >= 0, got {self.warmup_epochs}")
        if self.lr_schedule == "rbnn_cosine" and self.warmup_epochs < 1:
            raise ValueError(
                "schedule.lr_schedule=rbnn_cosine needs warmup_epochs >= 1; use lr_schedule=cosine for no warm-up"
            )
        if self.weight_decay_on not in WEIGHT_DECAY_ON:
            raise ValueError(
                f"schedule.weight_decay_on={self.weight_decay_on!r}; choose one of: {', '.join(WEIGHT_DECAY_ON)}"
            )
        if not 0 <= self.label_smoothing < 1:
            raise ValueError(f"schedule.label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if not 0 < self.gamma <= 1:
            raise ValueError(f"schedule.gamma must be in (0, 1], got {self.gamma}")
        if list(self.milestones) != sorted(self.milestones):
            raise ValueError(f"schedule.milestones must be increasing, got {list(self.milestones)}")


def lr_factor(cfg: ScheduleConfig, epoch: int, max_epochs: int) -> float:
    """Factor of the base LR used throughout epoch ``epoch`` (0-based) of ``max_epochs``."""
    w, e, big_e = cfg.warmup_epochs, epoch, max_epochs
    if e < w:
        return (e + 1) / w
    if cfg.lr_schedule == "rbnn_cosine":
        return 0.5 * (1.0 + math.cos(math.pi * (e - 2 * w + 1) / max(big_e - w + 1, 1)))
    if cfg.lr_schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * (e - w) / max(big_e - w, 1)))
    if cfg.lr_schedule == "multistep":
        return cfg.gamma ** sum(1 for m in cfg.milestones if m <= e)
    if cfg.lr_schedule == "linear":
        return max(0.0, 1.0 - (e - w) / max(big_e - w, 1))
    return 1.0


def lr_decays_before(cfg: ScheduleConfig, epoch: int) -> int:
    """How many multistep LR decays have happened by ``epoch`` (FleXOR doubles S_tanh at each)."""
    if cfg.lr_schedule != "multistep":
        return 0
    return sum(1 for m in cfg.milestones if m <= epoch)


def max_epochs(trainer: L.Trainer) -> int:
    """E, the run's epoch count (the schedule and per-epoch quantizer updates are functions of e / E).
    Lightning fills ``max_epochs`` at construction (1000 when it is null), so a fitting Trainer has one."""
    if trainer.max_epochs is None:
        raise RuntimeError("trainer.max_epochs is unset outside a fit")
    return trainer.max_epochs


def build_optimizer(cfg: ScheduleConfig, params) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov, weight_decay=cfg.weight_decay
        )
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, betas=(cfg.betas[0], cfg.betas[1]), weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(params, lr=cfg.lr, betas=(cfg.betas[0], cfg.betas[1]), weight_decay=cfg.weight_decay)


def build_scheduler(cfg: ScheduleConfig, optimizer: torch.optim.Optimizer, max_epochs: int):
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda e: lr_factor(cfg, e, max_epochs))
