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

from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

from binexp.config import DistillConfig


def distillation_loss(
    student: torch.Tensor, teacher: torch.Tensor, target: torch.Tensor, cfg: DistillConfig
) -> torch.Tensor:
    t = cfg.temperature
    kl = F.kl_div(
        F.log_softmax(student / t, dim=1), F.log_softmax(teacher / t, dim=1), log_target=True, reduction="batchmean"
    ) * (t * t)
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
    return [
        f"{name}.{sub}"
        for name, child in net.named_children()
        if name.startswith("layer") and isinstance(child, nn.Sequential)
        for sub, _ in child.named_children()
    ]


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
