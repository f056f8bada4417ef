"""The ``train`` verb's Hydra task: validated config -> DataModule, model, Trainer -> run dir."""

from __future__ import annotations

import logging
import platform
import sys
from pathlib import Path

import hydra
import lightning.pytorch as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

import binexp
from binexp.accounting import model_bits
from binexp.config import validate
from binexp.data import build_datamodule
from binexp.distill import load_teacher
from binexp.errors import BinexpError
from binexp.init_from import load_compatible
from binexp.lit.callbacks import QuantizerSchedule, RunRecord
from binexp.lit.module import ClassifierModule
from binexp.summary import compact_summary, data_input_size, format_summary, summarize, summary_dict

CHECKPOINT_DIR = "checkpoints"
log = logging.getLogger("binexp.train")
detail = logging.getLogger("binexp.detail.train")  # train.log only, unless -v
SWEPT_ENV = "BINEXP_SWEPT_KEYS"


def _swept_dirname(*, _root_) -> str:
    """``hydra.sweep.subdir``'s tail: the overrides of the keys the sweep varies (set by
    ``binexp train -m``), not every override (Hydra's ``override_dirname``, often ~90 chars)."""
    import os

    keys = {k for k in os.environ.get(SWEPT_ENV, "").split(",") if k}
    keys -= set(_root_.hydra.job.config.override_dirname.exclude_keys)  # e.g. data.root: paths never name a job
    full = str(_root_.hydra.job.override_dirname)
    if not keys:
        return full
    parts = [str(o).replace(os.sep, "_") for o in _root_.hydra.overrides.task if str(o).split("=", 1)[0].lstrip("+~") in keys]
    return ",".join(parts) or full


if not OmegaConf.has_resolver("binexp_swept"):
    OmegaConf.register_new_resolver("binexp_swept", _swept_dirname)


def build_callbacks(cfg: DictConfig, run_dir: Path | None) -> list[L.Callback]:
    """Instantiate every ``callbacks.<name>`` entry that has a ``_target_`` (null one to turn
    it off); the checkpoint callback writes to ``<run dir>/checkpoints``."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    callbacks: list[L.Callback] = []
    for key, node in (cfg.get("callbacks") or {}).items():
        if node is None or "_target_" not in node:
            continue
        try:
            cb = instantiate(node)
        except Exception as e:  # noqa: BLE001 - report config mistakes in one line
            cause = e.__cause__ or e
            raise BinexpError(f"callbacks.{key} cannot be built: {str(cause).splitlines()[0]}; fix: check its fields") from None
        if isinstance(cb, ModelCheckpoint) and run_dir is not None:
            cb.dirpath = str(run_dir / CHECKPOINT_DIR)
        callbacks.append(cb)
    return callbacks


def build_loggers(cfg: DictConfig, run_dir: Path) -> list:
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    loggers = []
    lcfg = cfg.get("logger") or {}
    if lcfg.get("tensorboard", True):
        # events in <run dir>/tensorboard/<run dir name>/: TensorBoard names a run by that path
        loggers.append(TensorBoardLogger(save_dir=str(run_dir), name="tensorboard", version=run_dir.name, default_hp_metric=False))
    if lcfg.get("csv", False):
        loggers.append(CSVLogger(save_dir=str(run_dir), name="csv", version=""))
    return loggers


def _is_rank_zero() -> bool:
    import os

    return int(os.environ.get("LOCAL_RANK", 0)) == 0 and int(os.environ.get("NODE_RANK", 0)) == 0


def write_summary(net, run_dir: Path, input_size: int, title: str) -> list:
    """The bit-aware summary of this run's model, as summary.txt and summary.json; returns its rows."""
    import json

    rows = summarize(net, input_size)
    (run_dir / "summary.txt").write_text(format_summary(rows, title) + "\n")
    (run_dir / "summary.json").write_text(json.dumps(summary_dict(rows), indent=2))
    return rows


def progress_and_noise(cfg: DictConfig, trainer_kwargs: dict) -> list:
    """Quiet unless ``verbose``; the live bar (Rich) only on a terminal, never carriage returns
    in a log. Returns the progress-bar callbacks to add."""
    from binexp.quiet import follow_stdout, make_quiet, make_verbose

    verbose = bool(cfg.get("verbose"))
    (make_verbose if verbose else make_quiet)()
    trainer_kwargs.setdefault("enable_model_summary", verbose)
    bar = bool(trainer_kwargs.get("enable_progress_bar", True)) and sys.stdout.isatty()
    trainer_kwargs["enable_progress_bar"] = bar
    if not bar:
        return []
    try:
        from binexp.lit.epoch_line import rich_bar

        bar_callback = rich_bar()
        follow_stdout()  # log lines (the epoch line) above the live bar, not into it
        return [bar_callback]
    except (ImportError, ModuleNotFoundError):  # rich missing: Lightning's own bar
        return []


def _versions() -> dict:
    import lightning

    return {"binexp": binexp.__version__, "torch": torch.__version__, "lightning": lightning.__version__,
            "hydra": hydra.__version__, "python": platform.python_version()}


def run_training(cfg: DictConfig) -> dict:
    """Train one configuration; returns the final ``metrics.json`` record."""
    run = validate(cfg)
    trainer_kwargs = dict(run.trainer)
    bars = progress_and_noise(cfg, trainer_kwargs)
    hc = HydraConfig.get()
    run_dir = Path(hc.runtime.output_dir)
    ckpt_path = None
    if cfg.get("resume"):
        ckpt_path = str(run_dir / CHECKPOINT_DIR / "last.ckpt")
        if not Path(ckpt_path).is_file():
            raise BinexpError(f"nothing to resume: {ckpt_path} does not exist; fix: start a new run without resume=")
    if cfg.get("seed") is not None:
        L.seed_everything(int(cfg.seed), workers=True, verbose=False)

    datamodule = build_datamodule(run.data)
    if hasattr(datamodule, "check"):
        datamodule.check()
    resolved = OmegaConf.to_container(cfg, resolve=True)
    module = ClassifierModule(run.model, run.quantizer, run.schedule, datamodule.num_classes, run_config=resolved)
    init_report = None
    if cfg.get("init_from") and ckpt_path is None:  # a resumed run restores everything from its own checkpoint
        init_report = load_compatible(module, cfg.init_from, run.model.name)
        log.info(init_report.summary())
    if cfg.get("channels_last"):
        module.use_channels_last()
    if cfg.get("compile"):
        module.net.compile()  # compiles forward in place; state_dict keys stay the same
    if run.distill.teacher:
        module.set_teacher(load_teacher(run.distill.teacher, datamodule.num_classes), run.distill)
        log.info("distilling from %s (T=%s, weight=%s)", run.distill.teacher, run.distill.temperature, run.distill.weight)
    static = {
        "name": cfg.get("name"),
        "run_dir": str(run_dir),
        "quantizer": run.quantizer.name,
        "model": run.model.name,
        "data": run.data.name,
        "seed": cfg.get("seed"),
        "overrides": list(hc.overrides.task),
        "choices": {k: v for k, v in hc.runtime.choices.items() if not k.startswith("hydra")},
        "meta": resolved.get("meta") or {},
        "max_epochs": run.trainer.get("max_epochs"),
        "versions": _versions(),
        **model_bits(module.net),
    }
    if init_report is not None:
        static["init_from"] = init_report.as_dict()
    if static.get("method_report"):
        detail.info("method report: %s", static["method_report"])
    for layer_name, report in static["layer_reports"].items():
        detail.info("layer %s: %s", layer_name, report)
    title = f"{run.model.name} / {run.quantizer.name} / {run.data.name}"
    if _is_rank_zero():
        rows = write_summary(module.net, run_dir, data_input_size(run.data), title)
        for line in compact_summary(rows, static, title):
            log.info(line)
    record = RunRecord(str(run_dir), static)
    from binexp.lit.epoch_line import EpochLine
    from binexp.lit.tb_views import TensorBoardViews

    callbacks = [QuantizerSchedule(), *build_callbacks(cfg, run_dir), EpochLine(), TensorBoardViews(static), *bars, record]
    trainer = L.Trainer(**trainer_kwargs, callbacks=callbacks, logger=build_loggers(cfg, run_dir), default_root_dir=str(run_dir))
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
    except BaseException as e:
        status = "interrupted" if isinstance(e, KeyboardInterrupt) else "failed"
        record.write(trainer, status=status, error=f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
        raise
    final = record.write(trainer, status="interrupted" if trainer.interrupted else "completed")
    log.info("%s after %s epochs: best val acc1 %s%%, last %s%%; run directory %s (tensorboard --logdir %s)",
             final.get("status"), final.get("epochs"), _pct(final.get("best_val_acc1")), _pct(final.get("val_acc1")),
             run_dir, run_dir)
    return final


def _pct(value) -> str:
    return "n/a" if value is None else f"{value:.2f}"


@hydra.main(config_path="pkg://binexp.conf", config_name="train", version_base="1.3")
def hydra_train(cfg: DictConfig) -> float | None:
    try:
        record = run_training(cfg)
    except BinexpError as e:
        if HydraConfig.get().mode == RunMode.RUN:  # one run: one line, exit 1
            print(f"binexp: error: {e}", file=sys.stderr)
            sys.exit(1)
        raise  # in a sweep the other jobs still run; the job's metrics.json says failed
    return record.get("best_val_acc1")
