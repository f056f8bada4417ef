"""Rebuild a run's :class:`~binexp.lit.module.ClassifierModule` (or its network) from a checkpoint:
the config saved in the checkpoint's hyperparameters, validated against the schemas like any
config, then the weights (loaded weights-only by :mod:`binexp.runs.checkpoint`)."""

from __future__ import annotations

from pathlib import Path

import torch

from binexp.errors import BinexpError
from binexp.lit.module import ClassifierModule, SavedSettings, build_classifier
from binexp.runs.checkpoint import _first_line, load, locate, run_config


def build_module(ckpt: dict, path: Path, option: str, load_weights: bool = True):
    """Rebuild the run's :class:`~binexp.lit.module.ClassifierModule` from the config saved in
    its checkpoint (validated against the schemas like any config) and load its weights."""
    from omegaconf import OmegaConf

    from binexp.config import to_schema
    from binexp.models.registry import ModelConfig
    from binexp.optimizer import ScheduleConfig
    from binexp.quant.registry import get_quantizer

    config, num_classes = run_config(ckpt, path, option)
    if "${" in repr(config):  # binexp saves the resolved config: an interpolation here was put in by hand
        raise BinexpError(
            f"{option}: the config saved in {path} holds an interpolation ${{...}}, which binexp never saves "
            f"(refused); fix: use a checkpoint written by binexp train"
        )
    run = OmegaConf.create(config)
    try:
        qentry = get_quantizer(run.quantizer.name)
    except KeyError:
        raise BinexpError(
            f"{option}: {path} was trained with quantizer {run.quantizer.name!r}, unknown to this binexp; "
            f"fix: use a matching binexp version"
        ) from None
    try:
        model_cfg = to_schema(ModelConfig, run.model, f"{option} model")
        quantizer_cfg = to_schema(qentry.schema, run.quantizer, f"{option} quantizer")
        check_network_size(ckpt, model_cfg, quantizer_cfg, num_classes)
        settings = SavedSettings(
            model_cfg,
            quantizer_cfg,
            to_schema(ScheduleConfig, run.get("schedule") or {}, f"{option} schedule"),
        )
        module = build_classifier(settings, num_classes, run_config=config)
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


def check_network_size(ckpt: dict, model_cfg, quantizer_cfg, num_classes: int) -> None:
    """The network the saved config describes is about as large as the weights saved beside it
    (counted on the meta device, nothing allocated): a saved ``model.width=100`` would otherwise
    build billions of parameters before its weights fail to fit."""
    from binexp.quant.registry import get_quantizer

    saved = sum(t.numel() for t in ckpt["state_dict"].values() if isinstance(t, torch.Tensor))
    if not isinstance(num_classes, int) or num_classes < 2:
        raise BinexpError(f"it says it was trained on {num_classes} classes; fix: pass an intact binexp checkpoint")
    probe = None
    for q in (quantizer_cfg, get_quantizer("fp").schema()):  # FleXOR's init needs real tensors: the fp layout bounds it
        try:
            with torch.device("meta"):
                probe = ClassifierModule(model_cfg, q, None, num_classes)  # type: ignore[arg-type]
            break
        except Exception:  # noqa: BLE001 - this quantizer cannot be built on the meta device
            continue
    if probe is None:
        return
    needed = sum(t.numel() for t in probe.state_dict().values())
    if needed > 8 * saved + 2**20:
        raise BinexpError(
            f"its saved config builds a network of {needed:,} values, but its weights hold {saved:,} "
            f"(refused before building it); fix: pass an intact binexp checkpoint"
        )


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
