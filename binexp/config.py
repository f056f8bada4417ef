"""Config schemas and validation: every group is checked against its dataclass schema (unknown
keys, types, ranges, choices) before anything runs, and any problem becomes one line."""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException, ValidationError

from binexp.data.registry import DATASETS, dataset_kinds
from binexp.distill import DistillConfig
from binexp.errors import BinexpError, did_you_mean
from binexp.models.registry import ModelConfig
from binexp.quant.registry import get_quantizer, quantizer_names
from binexp.schedule import ScheduleConfig


@dataclass
class RunConfig:
    """The validated pieces a run is built from."""

    data: Any
    model: ModelConfig
    quantizer: Any
    schedule: ScheduleConfig
    trainer: dict
    distill: DistillConfig
    raw: DictConfig


def _schema_error(group: str, err: Exception, schema: type) -> BinexpError:
    if isinstance(err, ConfigKeyError):
        key = getattr(err, "full_key", None) or getattr(err, "key", None) or str(err).splitlines()[0]
        valid = ", ".join(f for f in schema.__dataclass_fields__)
        hint = did_you_mean(str(key).rpartition(".")[2], schema.__dataclass_fields__, f"{group}.")
        return BinexpError(f"unknown key {group}.{key}{hint}; valid keys of {group}: {valid}")
    if isinstance(err, ValidationError):
        full_key = getattr(err, "full_key", "") or ""
        msg = str(err).splitlines()[0]
        return BinexpError(f"bad value for {group}.{full_key}: {msg}; fix: give a value of the right type")
    return BinexpError(f"{err}")


def to_schema(schema: type, node: DictConfig, group: str):
    """Merge ``node`` into ``schema`` and build the dataclass (runs its ``__post_init__`` checks)."""
    try:
        if isinstance(node, DictConfig):  # resolve ${...} against the whole config first (e.g. seed: ${seed})
            node = OmegaConf.to_container(node, resolve=True)
        merged = OmegaConf.merge(OmegaConf.structured(schema), node)
        return OmegaConf.to_object(merged)
    except (OmegaConfBaseException, ValueError, TypeError) as e:
        raise _schema_error(group, e, schema) from None


def trainer_kwargs(node: DictConfig) -> dict:
    from lightning.pytorch import Trainer

    kwargs = OmegaConf.to_container(node, resolve=True)
    allowed = set(inspect.signature(Trainer.__init__).parameters) - {"self", "callbacks", "logger", "default_root_dir"}
    for key in kwargs:
        if key not in allowed:
            raise BinexpError(f"unknown trainer option trainer.{key}{did_you_mean(key, allowed, 'trainer.')}; "
                              "fix: use a lightning.pytorch.Trainer argument (e.g. trainer.max_epochs, trainer.accelerator)")
    if kwargs.get("max_epochs") is not None and kwargs["max_epochs"] < 1:
        raise BinexpError(f"trainer.max_epochs must be >= 1, got {kwargs['max_epochs']}")
    return kwargs


def validate(cfg: DictConfig) -> RunConfig:
    """Check the composed config; raise :class:`BinexpError` with one line on the first problem."""
    try:
        qname = cfg.quantizer.name
        dkind = cfg.data.kind
    except OmegaConfBaseException as e:
        raise BinexpError(f"config is missing quantizer.name or data.kind ({e}); fix: select quantizer=<name> and data=<name>") from None
    try:
        qentry = get_quantizer(qname)
    except KeyError:
        raise BinexpError(f"quantizer.name={qname!r} is not a registered quantizer; choose one of: {', '.join(quantizer_names())}") from None
    if dkind not in DATASETS:
        raise BinexpError(f"data.kind={dkind!r} is not a dataset kind; choose one of: {', '.join(dataset_kinds())}")
    quantizer = to_schema(qentry.schema, cfg.quantizer, "quantizer")
    data = to_schema(DATASETS[dkind].schema, cfg.data, "data")
    model = to_schema(ModelConfig, cfg.model, "model")
    schedule = to_schema(ScheduleConfig, cfg.schedule, "schedule")
    trainer = trainer_kwargs(cfg.trainer)
    distill = to_schema(DistillConfig, cfg.get("distill") or {}, "distill")
    if cfg.get("verbose") not in (None, True, False):
        raise BinexpError(f"verbose must be true or false, got {cfg.get('verbose')!r}")
    seed = cfg.get("seed")
    if seed is not None and (not isinstance(seed, int) or seed < 0):
        raise BinexpError(f"seed must be a non-negative integer or null, got {seed!r}")
    return RunConfig(data=data, model=model, quantizer=quantizer, schedule=schedule, trainer=trainer, distill=distill, raw=cfg)
