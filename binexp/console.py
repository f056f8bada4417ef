"""Quiet by default: what ``binexp train`` prints is binexp's own (a compact summary, one line
per epoch, the final line). Lightning's start-up lines (GPU/TPU available, the litlogger tip,
"`Trainer.fit` stopped"), its model summary table, MLflow's database and experiment lines and a
few warnings that say nothing to a binexp user are turned off here; ``binexp train -v``
(``verbose=true``) leaves them all on. Per-layer reports (logger ``binexp.detail``) go to ``train.log`` only."""

from __future__ import annotations

import logging
import os
import re
import sys
import warnings

DETAIL_LOGGER = "binexp.detail"

# (category, message regex) of warnings that carry no information for a binexp run
NOISE_WARNINGS = [
    # torch's pytree deprecation, raised from inside Lightning (not something a user can act on)
    (FutureWarning, r".*isinstance\(treespec, LeafSpec\).*"),
    # binexp logs per epoch, never per step: the step-logging interval does not matter
    (UserWarning, r".*smaller than the logging interval.*"),
    # a local run on a machine that has SLURM's srun (a login node, a workstation in the cluster)
    (UserWarning, r".*`srun` command is available on your system but is not used.*"),
    # a resumed run continues into its own checkpoints/ folder; a new run's folder is always new
    (UserWarning, r"Checkpoint directory .* exists and is not empty\."),
]


# libraries whose INFO lines narrate routine steps ("Creating initial MLflow database tables...")
QUIET_LIBRARIES = ("mlflow", "alembic")
# (logger, message regex) of warnings that report a routine step: Lightning's MLflow logger on a
# new experiment (the tracker creates it, as asked)
NOISE_LOGS = [("lightning.pytorch.loggers.mlflow", r"Experiment with name .* not found\. Creating it\.")]


class _DropMessage(logging.Filter):
    def __init__(self, pattern: str) -> None:
        super().__init__()
        self.pattern = re.compile(pattern)

    def filter(self, record: logging.LogRecord) -> bool:
        return not self.pattern.fullmatch(record.getMessage())


def quiet_libraries() -> None:
    """The :data:`QUIET_LIBRARIES` at WARNING and the :data:`NOISE_LOGS` dropped. MLflow sets its
    loggers' level when it is imported, from ``MLFLOW_LOGGING_LEVEL``: set for a later import too.
    W&B prints its run set-up and sync hints unless ``WANDB_SILENT`` (the run's files are in
    ``<run dir>/wandb/``, as the README says)."""
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("WANDB_SILENT", "true")
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(logging.WARNING)
    for name, pattern in NOISE_LOGS:
        log = logging.getLogger(name)
        if not any(isinstance(f, _DropMessage) and f.pattern.pattern == pattern for f in log.filters):
            log.addFilter(_DropMessage(pattern))


class _DropDetail(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.name.startswith(DETAIL_LOGGER)


def console_handlers() -> list[logging.Handler]:
    return [
        h
        for h in logging.getLogger().handlers
        if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler)
    ]


def ignore_noise_warnings() -> None:
    """The :data:`NOISE_WARNINGS` off (also for the pre-flight check's Trainer, built before the run's)."""
    for category, message in NOISE_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)


def make_quiet() -> None:
    """Call before the Trainer is built (its start-up lines are logged by its constructor)."""
    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    ignore_noise_warnings()
    quiet_libraries()
    for handler in console_handlers():
        if not any(isinstance(f, _DropDetail) for f in handler.filters):
            handler.addFilter(_DropDetail())
        # a console line starts with what matters; train.log keeps Hydra's [time][logger][level] prefix
        handler.setFormatter(logging.Formatter("%(message)s"))


class _CurrentStdout:
    """A stream that writes to whatever ``sys.stdout`` is at write time: while Rich's live bar
    runs, that is Rich's proxy, which prints each log line above the bar instead of into it."""

    def write(self, text: str) -> int:
        return sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()

    def isatty(self) -> bool:
        return sys.stdout.isatty()


def follow_stdout() -> None:
    """Point the console log handlers that write to stdout at :class:`_CurrentStdout`."""
    for handler in console_handlers():
        if isinstance(handler, logging.StreamHandler) and handler.stream in (sys.stdout, sys.__stdout__):
            handler.setStream(_CurrentStdout())


def make_verbose() -> None:
    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.INFO)
    for handler in console_handlers():
        for f in [f for f in handler.filters if isinstance(f, _DropDetail)]:
            handler.removeFilter(f)


__all__ = [
    "DETAIL_LOGGER",
    "NOISE_LOGS",
    "NOISE_WARNINGS",
    "QUIET_LIBRARIES",
    "follow_stdout",
    "ignore_noise_warnings",
    "make_quiet",
    "make_verbose",
    "quiet_libraries",
]
