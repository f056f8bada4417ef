"""Knowledge distillation from a teacher checkpoint (KL on logits), as in Real-to-Binary and
ReActNet's two-stage recipes.

loss = (1 - weight) * CE(student, y) + weight * T^2 * KL(softmax(teacher/T) || softmax(student/T))

The teacher is rebuilt from the config saved in its checkpoint, frozen, kept in eval mode and
not saved in the student's checkpoints."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from torch import nn

from binexp.config import DistillConfig, to_schema


def distillation_loss(student: torch.Tensor, teacher: torch.Tensor, target: torch.Tensor, cfg: DistillConfig) -> torch.Tensor:
    t = cfg.temperature
    kl = F.kl_div(F.log_softmax(student / t, dim=1), F.log_softmax(teacher / t, dim=1), log_target=True,
                  reduction="batchmean") * (t * t)
    if cfg.weight >= 1.0:
        return kl
    return (1 - cfg.weight) * F.cross_entropy(student, target) + cfg.weight * kl


def load_teacher(source: str, num_classes: int) -> nn.Module:
    """Rebuild the teacher network from its checkpoint's saved config and load its weights."""
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
        raise BinexpError(f"distill.teacher: the teacher has {hp.get('num_classes')} classes, the data {num_classes}; "
                          "fix: use a teacher trained on the same data")
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
