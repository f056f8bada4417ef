"""Checks that run before Hydra starts a job, so bad input costs one line and writes nothing:
overrides compose, every group validates against its schema, the dataset exists, an explicit
run directory holds no earlier run, and a run to resume has a readable checkpoint."""

from __future__ import annotations

import os
from pathlib import Path

from omegaconf import open_dict

from binexp.errors import BinexpError, did_you_mean
from binexp.runs.layout import check_new_run_dir, check_writable, claim_output_dir

MAX_SWEEP_CHECKS = 64


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def compose(overrides: list[str]):
    """:func:`binexp.config.compose` (imported on first use: importing this module stays light)."""
    from binexp.config import compose as compose_config

    return compose_config(overrides)


MAX_SWEEP_JOBS = 10_000  # a sweep larger than this is a typo (range(0,100000000)), not a plan


def sweep_length(ov) -> int:
    """How many values a parsed sweep override has, counted without listing them."""
    import math

    from hydra.core.override_parser.types import ChoiceSweep, RangeSweep

    value = ov.value()
    if isinstance(value, RangeSweep):
        start, stop, step = value.start, value.stop, value.step
        if start is None or stop is None or not step:
            return 0
        if not all(math.isfinite(float(x)) for x in (start, stop, step)):
            return 0
        return max(0, math.ceil((stop - start) / step))
    if isinstance(value, ChoiceSweep):
        return len(value.list)
    return 1


def check_sweep_size(parsed, where: str) -> None:
    """The number of jobs of a sweep (the product of its swept values), before expanding it."""
    total = 1
    for ov in parsed:
        if ov.is_sweep_override():
            total *= sweep_length(ov)
            if total > MAX_SWEEP_JOBS:
                raise BinexpError(
                    f"{where}: {ov.input_line} makes the sweep more than {MAX_SWEEP_JOBS:,} jobs; "
                    f"fix: sweep fewer values (or split it into several sweeps)"
                )


def expand_sweeps(overrides: list[str], multirun: bool) -> list[list[str]]:
    """The override lists to check: one per value of each swept key (others at their first
    value), at most ``MAX_SWEEP_CHECKS``."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import OverrideType

    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except Exception as e:  # noqa: BLE001
        from binexp.config import not_an_override

        raise BinexpError(not_an_override(overrides) or f"cannot parse overrides: {_first_line(e)}") from None
    if multirun:
        check_sweep_size(parsed, "sweep")
    prefix = {OverrideType.ADD: "+", OverrideType.FORCE_ADD: "++", OverrideType.DEL: "~"}
    choices: list[list[str]] = []
    for ov in parsed:
        pre = prefix.get(ov.type, "")
        if ov.is_sweep_override():
            if not multirun:
                raise BinexpError(
                    f"{ov.input_line} is a sweep; fix: add -m to run it as a multirun (binexp train -m ...)"
                )
            try:
                values = list(ov.sweep_string_iterator())
            except Exception:  # noqa: BLE001 - e.g. glob(): leave it to Hydra
                return [overrides]
            choices.append([f"{pre}{ov.get_key_element()}={v}" for v in values])
        else:
            choices.append([ov.input_line or f"{pre}{ov.get_key_element()}={ov.value()}"])
    base = [c[0] for c in choices]
    variants = [base]
    for i, c in enumerate(choices):
        for v in c[1:]:
            variants.append(base[:i] + [v] + base[i + 1 :])
    return variants[:MAX_SWEEP_CHECKS]


def check_config(overrides: list[str]):
    """Compose, validate and check the data of one concrete override list."""
    from binexp.config import check_trainer, validate
    from binexp.data import build_datamodule
    from binexp.lit.callbacks import build_callbacks

    cfg = compose(overrides)
    with open_dict(cfg):
        hydra_node = cfg.pop("hydra", None)
    run = validate(cfg)
    datamodule = build_datamodule(run.data)
    if hasattr(datamodule, "check"):
        datamodule.check()
    if datamodule.num_classes < 2:
        raise BinexpError(
            f"data={run.data.name} has {datamodule.num_classes} class; classification needs at least 2; "
            f"fix: data.num_classes=<2 or more> (or a dataset with 2 or more classes)"
        )
    check_model(run, datamodule.num_classes)
    build_callbacks(cfg, None)
    from binexp.trackers import check as check_trackers

    check_trackers(cfg.get("logger"))  # logger=wandb|mlflow: fields known, package installed
    check_trainer(run.trainer)
    if cfg.get("init_from") and not cfg.get("resume"):
        from binexp.lit.module import build_classifier
        from binexp.runs.init_from import load_compatible

        # into a throwaway copy of the model: shapes and class count fail here, before any run directory exists
        module = build_classifier(run, datamodule.num_classes)
        load_compatible(module, cfg.init_from, run.model.name)
    if run.distill.teacher:
        from binexp.lit.restore import load_teacher

        load_teacher(run.distill.teacher, datamodule.num_classes)
    return cfg, run, hydra_node


def _strided_inputs(net, size: int) -> list[tuple[str, int, int]]:
    """(layer, stride, input height) of every strided conv or pooling layer in a forward pass of
    one ``size`` x ``size`` image."""
    import torch

    seen: list[tuple[str, int, int]] = []
    hooks = []
    for name, layer in net.named_modules():
        stride = getattr(layer, "stride", None)  # convs (binexp's binarized ones too) and poolings
        if stride is None or not hasattr(layer, "kernel_size"):
            continue
        s = stride[0] if isinstance(stride, (tuple, list)) else int(stride)
        if s > 1:
            hooks.append(layer.register_forward_pre_hook(lambda m, a, n=name, s=s: seen.append((n, s, a[0].shape[-2]))))
    first = next((m for m in net.modules() if hasattr(m, "in_channels")), None)
    channels = int(getattr(first, "in_channels", 3))
    try:
        with torch.no_grad():
            net.eval()(torch.zeros(1, channels, size, size))
    finally:
        for h in hooks:
            h.remove()
    return seen


def check_model(run, num_classes: int) -> None:
    """The network builds from this config and every strided layer of it sees at least as
    many pixels as its stride (``data.image_size=1`` into a ResNet trains on nothing)."""
    from binexp.data.registry import DATASETS  # noqa: F401 - the data schemas are registered
    from binexp.lit.module import build_classifier

    try:
        module = build_classifier(run, num_classes)
    except BinexpError:
        raise
    except (ValueError, TypeError, OverflowError, RuntimeError) as e:
        raise BinexpError(f"model={run.model.name} cannot be built from this config: {_first_line(e)}") from None
    from binexp.analysis.summary import data_input_size

    size = data_input_size(run.data)
    try:
        strided = _strided_inputs(module.net, size)
        small = next(((n, s, h) for n, s, h in strided if h < s), None)
    except RuntimeError as e:  # e.g. a kernel larger than what is left of the image
        small, strided = ("", 0, 0), []
        detail = _first_line(e)
    if small is None:
        return
    probe = 256
    needed = max((s * probe // h for _, s, h in _strided_inputs(module.net, probe)), default=probe)
    where = f"its layer {small[0]} (stride {small[1]}) gets a {small[2]}x{small[2]} input" if small[0] else detail
    raise BinexpError(
        f"images of {size}x{size} pixels are too small for model={run.model.name}: {where}; "
        f"fix: data.image_size >= {needed} (or another model)"
    )


def swept_keys(overrides: list[str]) -> list[str]:
    """The keys a multirun varies (``quantizer=fp,xnor seed=1,2`` -> quantizer, seed)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except Exception:  # noqa: BLE001 - preflight reports parse errors
        return []
    return [ov.get_key_element().lstrip("+~") for ov in parsed if ov.is_sweep_override()]


def preflight(overrides: list[str], multirun: bool) -> list[str]:
    """Check everything that can be checked before Hydra starts; returns the overrides to add
    (the output directory this process claimed, see :func:`binexp.runs.layout.claim_output_dir`)."""
    from binexp.extras import check_launcher_overrides

    check_launcher_overrides(overrides)  # hydra/launcher=slurm|local without its package: one line
    variants = expand_sweeps(overrides, multirun)
    swept = set(swept_keys(overrides)) if multirun else set()
    from binexp.config import check_light

    # first without torch (a typo is answered at once), then everything (imports torch)
    for check in (check_light, check_config):
        failures: list[tuple[list[str], BinexpError]] = []
        for variant in variants:
            try:
                check(variant)
            except BinexpError as e:
                if not swept:
                    raise
                failures.append((variant, e))
        if failures:  # name the sweep job (the values it sweeps) whose config is wrong
            failed, error = failures[0]
            job = " ".join(o for o in failed if o.split("=", 1)[0].lstrip("+~") in swept)
            more = f" ({len(failures)} of the {len(variants)} sweep jobs checked fail)" if len(failures) > 1 else ""
            raise BinexpError(f"in the sweep job {job}: {error}{more}")
    explicit = [
        o.split("=", 1)[1].strip("'\"")
        for o in overrides
        if o.lstrip("+").startswith("hydra.sweep.dir=" if multirun else "hydra.run.dir=")
    ]
    resuming = any(o.startswith("resume=") for o in overrides)
    target = Path(explicit[-1]).expanduser() if explicit else Path("outputs")
    ddp_child = int(os.environ.get("LOCAL_RANK") or 0) > 0 or int(os.environ.get("NODE_RANK") or 0) > 0
    if explicit and not multirun and not resuming and not ddp_child:  # a DDP child joins the run rank 0 started
        check_new_run_dir(target)
    check_writable(target)
    if explicit and multirun:
        from binexp.runs.sweep import check_same_sweep

        check_same_sweep(target, overrides)
    if resuming or ddp_child:
        return []
    from omegaconf import OmegaConf

    def default_dir(key: str) -> str:
        return str(OmegaConf.select(compose(variants[0]), key))

    return claim_output_dir(default_dir, multirun, target if explicit else None)


__all__ = [
    "check_config",
    "compose",
    "did_you_mean",
    "expand_sweeps",
    "preflight",
    "swept_keys",
]
