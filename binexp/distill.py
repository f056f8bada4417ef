"""Knowledge distillation from a teacher checkpoint (KL on logits), as in Real-to-Binary and
ReActNet's two-stage recipes, and attention transfer (Real-to-Binary's strong baseline,
Martinez et al., ICLR 2020, arXiv 2003.11535, Eq. 2; Zagoruyko & Komodakis, arXiv 1612.03928).

loss = (1 - weight) * CE(student, y) + weight * T^2 * KL(softmax(teacher/T) || softmax(student/T))
       + attention_weight * sum_j mean_i || Q_S^j(i) - Q_T^j(i) ||_2

with Q^j(i) = vec(mean_c A_c^2) / ||vec(mean_c A_c^2)||_2 the normalised attention map of
sample i at the output A of block j (every block of the ResNet stages ``layer1``, ``layer2``...),
student and teacher matched block by block.

The teacher is rebuilt from the config saved in its checkpoint, frozen, kept in eval mode and
not saved in the student's checkpoints."""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from torch import nn


@dataclass
class DistillConfig:
    teacher: Optional[str] = None  # run directory or checkpoint of the teacher; null = no distillation
    temperature: float = 1.0
    weight: float = 1.0  # share of the KL term; 1.0 = KL only (ReActNet), 0.5 = half CE
    attention_weight: float = 0.0  # attention transfer after every block (Real-to-Binary); 0 = off

    def __post_init__(self) -> None:
        if not (self.attention_weight >= 0 and math.isfinite(self.attention_weight)):
            raise ValueError(f"distill.attention_weight must be a number >= 0, got {self.attention_weight}")
        if self.attention_weight > 0 and not self.teacher:
            raise ValueError("distill.attention_weight > 0 needs a teacher; fix: set distill.teacher=<run dir or .ckpt>")
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


def attention_map(a: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N, H*W): the channel mean of the squared activations, L2-normalised per sample."""
    q = a.float().pow(2).mean(dim=1).flatten(1)
    return q / q.norm(dim=1, keepdim=True).clamp_min(1e-12)


def attention_transfer_loss(student: list[torch.Tensor], teacher: list[torch.Tensor]) -> torch.Tensor:
    """sum over matched blocks j of mean over samples of ||Q_S^j - Q_T^j||_2 (Real-to-Binary Eq. 2, p = 2)."""
    if len(student) != len(teacher) or not student:
        raise ValueError(f"attention transfer needs matched block outputs, got {len(student)} and {len(teacher)}")
    terms = []
    for s, t in zip(student, teacher):
        if s.shape[0] != t.shape[0] or s.shape[2:] != t.shape[2:]:
            raise ValueError(f"attention maps differ in shape: student {tuple(s.shape)}, teacher {tuple(t.shape)}")
        terms.append((attention_map(s) - attention_map(t.detach())).norm(dim=1).mean())
    return torch.stack(terms).sum()


def block_names(net: nn.Module) -> list[str]:
    """The blocks attention is matched after: every child of a top-level ``layer<k>`` Sequential."""
    return [f"{name}.{sub}" for name, child in net.named_children() if name.startswith("layer") and isinstance(child, nn.Sequential)
            for sub, _ in child.named_children()]


class FeatureTap:
    """Forward hooks that keep the outputs of the named submodules while :meth:`capture` is active."""

    def __init__(self, net: nn.Module, names: list[str]) -> None:
        modules = dict(net.named_modules())
        self.features: list[torch.Tensor] = []
        self.active = False
        for name in names:
            modules[name].register_forward_hook(self._keep)

    def _keep(self, module, args, output) -> None:
        if self.active:
            self.features.append(output)

    @contextmanager
    def capture(self):
        self.features, self.active = [], True
        try:
            yield self.features
        finally:
            self.active = False


def load_teacher(source: str, num_classes: int) -> nn.Module:
    """Rebuild the teacher network from its checkpoint's saved config and load its weights."""
    from binexp.config import to_schema
    from binexp.errors import BinexpError
    from binexp.init_from import read_checkpoint, resolve_checkpoint
    from binexp.models import ModelConfig, build_model
    from binexp.quant import ConvFactory, get_quantizer

    path = resolve_checkpoint(source)
    ckpt = read_checkpoint(path)
    hp = ckpt.get("hyper_parameters") or {}
    run_config = hp.get("run_config") or {}
    if "model" not in run_config or "quantizer" not in run_config:
        raise BinexpError(f"distill.teacher: {path} has no saved binexp config; fix: use a checkpoint written by binexp train")
    if hp.get("num_classes") != num_classes:
        raise BinexpError(f"distill.teacher: the teacher has {hp.get('num_classes')} classes, the data {num_classes}; fix: use a teacher trained on the same data")
    model_cfg = to_schema(ModelConfig, OmegaConf.create(run_config["model"]), "distill.teacher model")
    qcfg = run_config["quantizer"]
    quant_cfg = to_schema(get_quantizer(qcfg["name"]).schema, OmegaConf.create(qcfg), "distill.teacher quantizer")
    teacher = build_model(model_cfg, ConvFactory(quant_cfg), num_classes)
    state = {k.removeprefix("net."): v for k, v in ckpt["state_dict"].items() if k.startswith("net.")}
    teacher.load_state_dict(state)
    teacher.eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher
