"""The ``train`` verb's Hydra task: validated config -> DataModule, model, Trainer -> run dir."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import platform
import sys
from collections.abc import Callable
from pathlib import Path

import hydra
import lightning.pytorch as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

import binexp
from binexp import safeio
from binexp.analysis.accounting import model_bits, model_ops
from binexp.analysis.entropy import model_entropy
from binexp.analysis.summary import compact_summary, data_input_size, format_summary, summarize, summary_dict
from binexp.config import register_schemas, validate
from binexp.data import build_datamodule
from binexp.errors import BinexpError
from binexp.lit.callbacks import QuantizerSchedule, RunRecord, build_callbacks
from binexp.lit.interrupt import Interrupt
from binexp.lit.module import build_classifier
from binexp.lit.restore import load_teacher
from binexp.runs import NEW_RUN_DIR_ENV, checkpoint
from binexp.runs import sweep as sweep_resume  # registers the resolver behind hydra.output_subdir
from binexp.runs.init_from import load_compatible
from binexp.runs.layout import CHECKPOINT_DIR, LAST
from binexp.runs.record import RunLock
from binexp.runs.resume import already_complete, previous_record, read_position, resume_checkpoint

log = logging.getLogger("binexp.train")
detail = logging.getLogger("binexp.detail.train")  # train.log only, unless -v

EXTRA_CALLBACKS: list[Callable[[], L.Callback]] = []
"""Factories of callbacks added to every run this process trains (after the config's own
callbacks), one fresh instance per run. Only Python code that imports binexp can add to it (the
test launcher ``tests/support/launch.py`` does, for kill points and state dumps); no config,
override or run directory can reach it."""


register_schemas()  # the option YAMLs start from the schemas' defaults (binexp.config)


def _rank() -> int:
    """This process's global rank (Lightning sets ``rank_zero_only.rank`` from the launcher's environment)."""
    return int(getattr(rank_zero_only, "rank", 0))


def build_loggers(cfg: DictConfig, run_dir: Path) -> list:
    from lightning.pytorch.loggers import CSVLogger, Logger

    from binexp.lit.tb_views import EpochTensorBoardLogger  # the epoch as TensorBoard's step

    loggers: list[Logger] = []
    lcfg = cfg.get("logger") or {}
    if lcfg.get("tensorboard", True):
        # events in the run directory itself: TensorBoard names a run by the events' folder relative
        # to --logdir, so a sweep's run is named once by its folder (``0_quantizer=xnor``)
        loggers.append(EpochTensorBoardLogger(save_dir=str(run_dir), name="", version="", default_hp_metric=False))
    if lcfg.get("csv", False):
        loggers.append(CSVLogger(save_dir=str(run_dir), name="csv", version=""))
    from binexp.trackers import build as build_trackers  # logger.wandb / logger.mlflow

    return loggers + build_trackers(lcfg, run_dir)


@rank_zero_only
def write_summary(net, run_dir: Path, input_size: int, title: str) -> list:
    """The bit-aware summary of this run's model, as summary.txt and summary.json; returns its rows
    (None on ranks other than 0)."""
    import json

    from binexp.analysis.entropy import format_entropy, model_entropy

    rows = summarize(net, input_size)
    entropy = format_entropy(model_entropy(net))  # of the initial weights; metrics.json has the trained ones
    text = format_summary(rows, title) + ("\n\n(at initialisation) " + entropy if entropy else "") + "\n"
    safeio.atomic_write_text(run_dir / "summary.txt", text)
    safeio.atomic_write_text(run_dir / "summary.json", json.dumps(summary_dict(rows), indent=2))
    return rows


def progress_and_noise(cfg: DictConfig, trainer_kwargs: dict) -> list:
    """Quiet unless ``verbose``; the live bar (Rich) only on a terminal, never carriage returns
    in a log. Returns the progress-bar callbacks to add."""
    from binexp.console import follow_stdout, make_quiet, make_verbose

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

    return {
        "binexp": binexp.__version__,
        "torch": torch.__version__,
        "lightning": lightning.__version__,
        "hydra": hydra.__version__,
        "python": platform.python_version(),
    }


def run_training(cfg: DictConfig) -> dict:
    """Train one configuration; returns the final ``metrics.json`` record."""
    run = validate(cfg)
    hc = HydraConfig.get()
    run_dir = Path(hc.runtime.output_dir)
    if _rank() != 0:
        _leave_the_log_to_rank_zero()
    lock = RunLock(run_dir)
    if _rank() == 0 and not lock.acquire():
        raise BinexpError(
            f"{run_dir} is being trained by another live process; fix: wait for it to end or stop it first"
        )
    try:
        return _run_training(cfg, run, hc, run_dir)
    except BinexpError as e:
        lock.release()
        if not isinstance(e, RunWriteError):
            _discard_if_nothing_made(cfg, hc, run_dir)
        raise
    finally:
        lock.release()


def _leave_the_log_to_rank_zero() -> None:
    """``train.log`` is rank 0's: another rank (a SLURM task of a multi-task job, whose Hydra job logs
    to the same ``train.log``, or a DDP child Lightning started, logging to
    ``train_ddp_process_<n>.log``) writes its lines to its console only (its stderr, or submitit's
    per-task log), so each line of the run is in ``train.log`` once and the run directory holds no
    other log. A per-rank file left empty is removed."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, logging.FileHandler)]:
        root.removeHandler(handler)
        handler.close()
        path = Path(handler.baseFilename)
        if path.name != "train.log" and path.is_file() and not path.is_symlink() and path.stat().st_size == 0:
            with contextlib.suppress(OSError):
                path.unlink()


def _discard_if_nothing_made(cfg: DictConfig, hc, run_dir: Path) -> None:
    """Bad input found only once training starts (an empty CIFAR batch, an unreadable image) leaves
    nothing behind, as one found by the pre-flight does: a new single run (not a resume, not a
    sweep job, whose record says why it failed) that wrote no checkpoint loses its files, and its
    folder too when this ``binexp train`` made it."""
    import shutil

    if hc.mode != RunMode.RUN or cfg.get("resume") or _rank() != 0:
        return
    if any(name.endswith(".ckpt") for _, _, files in os.walk(run_dir) for name in files):
        return
    made = os.environ.get(NEW_RUN_DIR_ENV) or ""  # the topmost folder this command made for the run
    made_here = bool(made) and (run_dir.absolute() == Path(made) or Path(made) in run_dir.absolute().parents)
    for entry in run_dir.iterdir():  # rmtree never follows a link out of the folder
        with contextlib.suppress(OSError):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
    if made_here:
        with contextlib.suppress(OSError):  # up to the topmost folder made, while empty
            for folder in (run_dir.absolute(), *run_dir.absolute().parents):
                folder.rmdir()
                if folder == Path(made):
                    break


def _run_training(cfg: DictConfig, run, hc, run_dir: Path) -> dict:
    """A run in named steps: plan the start (fresh, resume, skip) -> build data and module ->
    the static record -> fit -> the final record."""
    trainer_kwargs = dict(run.trainer)
    bars = progress_and_noise(cfg, trainer_kwargs)
    finished, ckpt_path, previous = _plan_start(cfg, run, hc, run_dir)
    if finished is not None:
        return finished
    datamodule, module, init_report, resolved = _build(cfg, run, ckpt_path)
    static = _static_record(cfg, run, hc, run_dir, module, resolved, init_report)
    _write_model_summary(module, run, run_dir, static)
    trainer, record = _fit(cfg, run_dir, trainer_kwargs, bars, module, datamodule, static, previous, ckpt_path)
    return _finish(trainer, record, module, run_dir)


def _plan_start(cfg: DictConfig, run, hc, run_dir: Path) -> tuple[dict | None, str | None, dict]:
    """(the record to return at once, or None; the checkpoint to resume from; the previous record):
    ``resume=<dir>`` continues (or reports a finished run), a sweep re-run skips, resumes or starts."""
    ckpt_path = None
    previous = {}
    if cfg.get("resume"):
        previous = previous_record(run_dir)
        if already_complete(previous, run.trainer.get("max_epochs")):
            n = previous["epochs"]
            print(  # not an error: the run is done
                f"{run_dir} already completed its {n} epoch{'s' if n != 1 else ''}; to train it further: "
                f"binexp train resume={run_dir} trainer.max_epochs=<more than {n}>"
            )
            return previous, None, previous
        ckpt, note = resume_checkpoint(run_dir)
        ckpt_path = str(ckpt)
        if note:
            log.warning(note)
        elif (position := read_position(ckpt)) is not None:  # read once: the start's reads are shared
            log.info("resuming %s from %s at epoch %d, step %d", run_dir, ckpt.name, position[1] + 1, position[0])
        if _rank() == 0:  # what a killed write left behind
            for folder in (run_dir, run_dir / CHECKPOINT_DIR):
                safeio.remove_stale_temps(folder)
    elif hc.mode == RunMode.MULTIRUN:  # a sweep re-run into its own directory: skip, resume or start
        action, ckpt_path, note = sweep_resume.plan(run_dir)
        if action == "skip":
            log.info("%s already holds a completed run; skipped (nothing rewritten)", run_dir)
            return sweep_resume.read_record(run_dir) or {}, None, previous
        if action == "resume":
            previous = previous_record(run_dir)
            log.info("resuming %s from %s%s", run_dir, ckpt_path, f" ({note})" if note else "")
    return None, ckpt_path, previous


def _build(cfg: DictConfig, run, ckpt_path: str | None):
    """Seed, then the DataModule and the ClassifierModule (init_from, channels_last, compile, teacher)."""
    if cfg.get("seed") is not None:
        L.seed_everything(int(cfg.seed), workers=True, verbose=False)

    datamodule = build_datamodule(run.data, seed=cfg.get("seed"))
    if hasattr(datamodule, "check"):
        datamodule.check()
    resolved = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(resolved, dict)  # the composed config is a mapping
    module = build_classifier(run, datamodule.num_classes, run_config=resolved)
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
        log.info(
            "distilling from %s (T=%s, weight=%s)", run.distill.teacher, run.distill.temperature, run.distill.weight
        )
    return datamodule, module, init_report, resolved


def _static_record(cfg: DictConfig, run, hc, run_dir: Path, module, resolved: dict, init_report) -> dict:
    """What metrics.json says about the run before it trains: names, overrides, bits, OPs, entropy."""
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
        # BOPs, FLOPs and OPs = FLOPs + BOPs/64 per image (Bi-Real Net / ReActNet convention)
        "ops": model_ops(module.net, data_input_size(run.data)),
    }
    # sign-bit entropy / Huffman size of the initial weights, for the record (the trained ones at the end)
    static["entropy_at_start"] = {k: v for k, v in model_entropy(module.net).items() if k != "layer_entropy"}
    if init_report is not None:
        static["init_from"] = init_report.as_dict()
    if static.get("method_report"):
        detail.info("method report: %s", static["method_report"])
    for layer_name, report in static["layer_reports"].items():
        detail.info("layer %s: %s", layer_name, report)
    return static


def _write_model_summary(module, run, run_dir: Path, static: dict) -> None:
    """summary.txt in the run directory and its compact lines on the console (rank 0)."""
    title = f"{run.model.name} / {run.quantizer.name} / {run.data.name}"
    try:
        rows = write_summary(module.net, run_dir, data_input_size(run.data), title)  # rank 0 only (rank_zero_only)
    except OSError as e:
        raise write_error(e, run_dir) from None
    if rows is not None:
        for line in compact_summary(rows, static, title):
            log.info(line)


def _fit(
    cfg: DictConfig,
    run_dir: Path,
    trainer_kwargs: dict,
    bars: list,
    module,
    datamodule,
    static: dict,
    previous: dict,
    ckpt_path: str | None,
):
    """The callbacks, the Trainer and ``trainer.fit``; a failure is recorded in metrics.json first."""
    record = RunRecord(str(run_dir), static, previous=previous)
    interrupt = Interrupt(run_dir / CHECKPOINT_DIR / LAST)
    from binexp.lit.epoch_line import EpochLine
    from binexp.lit.tb_views import TensorBoardViews

    callbacks = [
        QuantizerSchedule(),
        # before the configured callbacks: a divergence line follows its epoch's line, and the previous
        # epoch's line and record are written at an epoch's start before any other callback's work
        EpochLine(logged_epochs=int(previous.get("epochs") or 0)),
        record,
        *build_callbacks(cfg, run_dir),
        *(make() for make in EXTRA_CALLBACKS),
        TensorBoardViews(static),
        *bars,
        interrupt,
    ]
    # SafeCheckpointIO: weights-only loads (also on resume) and atomic saves in the run directory
    trainer = L.Trainer(
        **trainer_kwargs,
        callbacks=callbacks,
        logger=build_loggers(cfg, run_dir),
        default_root_dir=str(run_dir),
        plugins=[checkpoint.safe_checkpoint_io()],
    )
    checkpoint.forget(keep=ckpt_path)  # the start read what it needs; only the restore's own checkpoint stays
    try:
        with interrupt.installed():
            trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
            interrupt.raise_if_stopped()
    except BaseException as e:
        if interrupt.caught(e):
            interrupt.stop(e, trainer, record, run_dir, fresh=ckpt_path is None)
        with contextlib.suppress(OSError):  # the output is unwritable: the one line below says so
            record.write(
                trainer, status="failed", error=f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
            )
        if (
            isinstance(e, OSError) and e.errno in WRITE_ERRNOS
        ):  # full disk, read-only output: one line, the last good checkpoint stays
            raise write_error(e, run_dir) from None
        raise
    return trainer, record


def _finish(trainer, record, module, run_dir: Path) -> dict:
    """The final metrics.json (trained entropy, completed or interrupted) and the last console line."""
    record.static.update(model_entropy(module.net))  # the trained sign bits: entropy and Huffman size
    try:
        final = record.write(trainer, status="interrupted" if trainer.interrupted else "completed")
    except OSError as e:
        raise write_error(e, run_dir) from None
    log.info(
        "%s after %s epoch%s: best val acc1 %s%%, last %s%%; run directory %s (tensorboard --logdir %s)",
        final.get("status"),
        final.get("epochs"),
        "" if final.get("epochs") == 1 else "s",
        _pct(final.get("best_val_acc1")),
        _pct(final.get("val_acc1")),
        run_dir,
        run_dir,
    )
    return final


WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG}


class RunWriteError(BinexpError):
    """The run directory cannot be written (full disk, read-only): what it holds stays for a resume."""


def write_error(e: OSError, run_dir: Path) -> BinexpError:
    """A full disk or unwritable output as one line."""
    where = f" {e.filename}" if e.filename else ""
    return RunWriteError(
        f"cannot write to the run directory {run_dir} ({e.strerror or e}{where}); "
        f"fix: free disk space or make it writable, then continue with resume={run_dir}"
    )


def _pct(value) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def one_line(e: BaseException) -> str:
    """The message of a :class:`BinexpError`; one raised in a DataLoader worker reaches the main
    process wrapped with the worker's traceback: its last line is the message."""
    text = str(e)
    if "Original Traceback" in text:
        last = [line for line in text.splitlines() if line.strip()][-1]
        return last.split("BinexpError: ", 1)[-1]
    return text


def record_early_failure(run_dir: Path, e: BaseException) -> None:
    """A sweep job that failed before its run wrote ``metrics.json`` (e.g. a tracker that could not
    start) records ``failed`` with the reason, so ``binexp status`` never shows it as starting."""
    from binexp.runs.record import is_held

    path = run_dir / "metrics.json"
    if getattr(rank_zero_only, "rank", 0) != 0 or path.exists() or is_held(run_dir):  # held: another live process's run
        return
    import json

    first = str(e).strip().splitlines()[0] if str(e).strip() else ""
    record = {"status": "failed", "epochs": 0, "run_dir": str(run_dir), "error": f"{type(e).__name__}: {first}"}
    with contextlib.suppress(OSError):
        safeio.atomic_write_text(path, json.dumps(record, indent=2, sort_keys=True))


@hydra.main(config_path="pkg://binexp.conf", config_name="train", version_base="1.3")
def hydra_train(cfg: DictConfig) -> float | None:
    try:
        record = run_training(cfg)
    except BinexpError as e:
        if HydraConfig.get().mode == RunMode.RUN:  # one run: one line, exit 1
            print(f"binexp: error: {one_line(e)}", file=sys.stderr)
            sys.exit(1)
        record_early_failure(Path(HydraConfig.get().runtime.output_dir), e)
        raise  # in a sweep the other jobs still run; the job's metrics.json says failed
    except Exception as e:
        if HydraConfig.get().mode == RunMode.MULTIRUN:
            record_early_failure(Path(HydraConfig.get().runtime.output_dir), e)
        raise
    return record.get("best_val_acc1")
