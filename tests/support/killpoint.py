"""Test callbacks: the training process sends a signal to itself at an exact point, so kill and
resume tests need no sleeps (``KillAt``); ``EpochLog`` and ``RequeueSignal`` serve the sweep and
SLURM-requeue tests. Not part of binexp, and no config can name them: a test adds them to a real
``binexp train`` process through the test launcher, e.g.::

    run_cli(args, tmp, callbacks=[("tests.support.killpoint.KillAt", {"at": "batch", "step": 5})])

``at``:

* ``fit_start``: at fit start, before anything is trained (an interrupt during start-up);
* ``batch``: at the end of the training batch after which the global step is ``step``;
* ``epoch_start``: at the start of epoch ``epoch``, after the quantizer's epoch-start work
  (RBNN's rotation update) has changed the network in memory;
* ``validation``: after the first validation batch of epoch ``epoch`` (not the sanity check);
* ``epoch_end``: at the end of epoch ``epoch``, after its validation, before its checkpoints;
* ``checkpoint_write``: while ``checkpoints/last.ckpt`` of epoch ``epoch`` is being written:
  half of its bytes are in the file when the signal comes (what a kill does to a writer that
  writes in place).

``signal``: ``SIGKILL`` (default), ``SIGINT``, ``SIGTERM`` or ``SIGSTOP`` (the process freezes,
holding its run lock, until the test kills it). The signal is sent once per
process (a resumed run that passes the same point again is not killed: ``once_file``, if set,
is created when the signal has been sent and disarms the callback in later processes)."""

from __future__ import annotations

import io
import os
import signal
from pathlib import Path

import lightning.pytorch as L
import torch
from lightning.pytorch.callbacks import Callback


class KillAt(Callback):
    def __init__(
        self, at: str = "batch", step: int = -1, epoch: int = -1, signal: str = "SIGKILL", once_file: str | None = None
    ) -> None:
        if at not in ("fit_start", "batch", "epoch_start", "validation", "epoch_end", "checkpoint_write"):
            raise ValueError(f"KillAt.at: unknown point {at!r}")
        self.at, self.step, self.epoch, self.signal_name = at, int(step), int(epoch), signal
        self.once_file = Path(once_file) if once_file else None

    def _armed(self) -> bool:
        return self.once_file is None or not self.once_file.exists()

    def _fire(self) -> None:
        if self.once_file is not None:
            self.once_file.write_text("sent\n")
        os.kill(os.getpid(), getattr(signal, self.signal_name))

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.at == "fit_start" and self._armed():
            self._fire()

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx: int
    ) -> None:
        if self.at == "batch" and trainer.global_step == self.step and self._armed():
            self._fire()

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.at == "epoch_start" and trainer.current_epoch == self.epoch and self._armed():
            self._fire()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.at == "epoch_end" and trainer.current_epoch == self.epoch and self._armed():
            self._fire()

    def on_validation_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        if (
            self.at == "validation"
            and not trainer.sanity_checking
            and trainer.current_epoch == self.epoch
            and self._armed()
        ):
            self._fire()

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self.at != "checkpoint_write":
            return
        io_ = trainer.strategy.checkpoint_io
        original = io_.save_checkpoint
        callback = self

        def save_checkpoint(checkpoint, path, storage_options=None):
            if Path(path).name == "last.ckpt" and checkpoint.get("epoch") == callback.epoch and callback._armed():
                buffer = io.BytesIO()
                torch.save(checkpoint, buffer)
                data = buffer.getvalue()
                with open(path, "wb") as f:
                    f.write(data[: len(data) // 2])
                    f.flush()
                    os.fsync(f.fileno())
                callback._fire()
            return original(checkpoint, path, storage_options=storage_options)

        io_.save_checkpoint = save_checkpoint


class EpochLog(Callback):
    """Appends every started epoch to ``<run dir>/epochs_started.txt``; with ``BINEXP_TEST_KILL``
    = ``<text in the run dir's name>:<epoch>`` it SIGKILLs its own process (the whole sweep) when
    that epoch starts in that job, after the previous epoch's checkpoints were written."""

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        with open(os.path.join(trainer.default_root_dir, "epochs_started.txt"), "a") as f:
            f.write(f"{trainer.current_epoch}\n")
        where, _, epoch = os.environ.get("BINEXP_TEST_KILL", "").rpartition(":")
        if where and where in os.path.basename(trainer.default_root_dir) and trainer.current_epoch == int(epoch):
            os.kill(os.getpid(), signal.SIGKILL)


class RequeueSignal(Callback):
    """With ``BINEXP_TEST_SIGUSR1=<epoch>``: at the end of that epoch's validation, sends SIGUSR1 (what
    SLURM sends before a time limit, ``--signal=USR1@...``) to its own process, as SLURM would."""

    def on_validation_end(self, trainer, pl_module) -> None:
        epoch = os.environ.get("BINEXP_TEST_SIGUSR1")
        if epoch and not trainer.sanity_checking and trainer.current_epoch == int(epoch):
            os.kill(os.getpid(), signal.SIGUSR1)
