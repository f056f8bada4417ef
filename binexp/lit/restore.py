"""Rebuild a run's :class:`~binexp.lit.module.ClassifierModule` (or its network) from a checkpoint:
the config saved in the checkpoint's hyperparameters, validated against the schemas like any
config, then the weights (loaded weights-only by :mod:`binexp.checkpoint`)."""

from __future__ import annotations

from pathlib import Path

import torch

from binexp.checkpoint import _first_line, load, locate, run_config
from binexp.errors import BinexpError
from binexp.lit.module import ClassifierModule


def build_module(ckpt: dict, path: Path, option: str, load_weights: bool = True):
    """Rebuild the run's :class:`~binexp.lit.module.ClassifierModule` from the config saved in
    its checkpoint (validated against the schemas like any config) and load its weights."""
    from omegaconf import OmegaConf

    from binexp.config import to_schema
    from binexp.models.registry import ModelConfig
    from binexp.quant.registry import get_quantizer
    from binexp.schedule import ScheduleConfig

    config, num_classes = run_config(ckpt, path, option)
    run = OmegaConf.create(config)
    try:
        qentry = get_quantizer(run.quantizer.name)
    except KeyError:
        raise BinexpError(
            f"{option}: {path} was trained with quantizer {run.quantizer.name!r}, unknown to this binexp; "
            f"fix: use a matching binexp version"
        ) from None
    try:
        module = ClassifierModule(
            to_schema(ModelConfig, run.model, f"{option} model"),
            to_schema(qentry.schema, run.quantizer, f"{option} quantizer"),
            to_schema(ScheduleConfig, run.get("schedule") or {}, f"{option} schedule"),
            num_classes,
            run_config=config,
        )
        if load_weights:
            module.load_state_dict(ckpt["state_dict"])
    except BinexpError as e:
        raise BinexpError(f"{option}: cannot rebuild the run saved in {path}: {e}") from None
    except Exception as e:  # noqa: BLE001 - a checkpoint that does not fit its own config
        raise BinexpError(
            f"{option}: cannot rebuild the run saved in {path} ({_first_line(e)}); "
            f"fix: pass an intact binexp checkpoint"
        ) from None
    return module.eval()


def build_network(ckpt: dict, path: Path, option: str, num_classes: int | None = None) -> torch.nn.Module:
    """The network alone (``module.net``), checking the class count when given."""
    _, saved_classes = run_config(ckpt, path, option)
    if num_classes is not None and saved_classes != num_classes:
        raise BinexpError(
            f"{option}: {path} was trained on {saved_classes} classes, the data has {num_classes}; "
            f"fix: use a checkpoint trained on the same data"
        )
    return build_module(ckpt, path, option).net


def load_teacher(source: str, num_classes: int) -> torch.nn.Module:
    """Rebuild the teacher network from its checkpoint's saved config and load its weights
    (:func:`build_network`: a weights-only load, the class count checked)."""
    path = locate(source, "distill.teacher")
    teacher = build_network(load(path, "distill.teacher"), path, "distill.teacher", num_classes)
    teacher.eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher


__all__ = ["build_module", "build_network", "load_teacher"]
