"""Ctrl-C (SIGINT) and SIGTERM end a run as ``interrupted``, with a checkpoint to resume from.

While :meth:`Interrupt.installed` is active (the train task wraps ``trainer.fit`` in it):

* before training starts (data set-up, sanity check), a signal raises :class:`RunInterrupted`
  at once: nothing has been trained, nothing is saved;
* once training runs, the first signal is only noted; at the end of the current training batch
  the state is saved to ``checkpoints/last.ckpt`` (temporary file in the same folder, then
  ``os.replace``, so a kill during the write leaves the previous one intact) and
  :class:`RunInterrupted` ends the fit. The checkpoint is mid-epoch: the loader state saved with
  it (``binexp.data.seeding``) makes the resumed epoch skip exactly the batches already trained;
* a signal on the last training batch of an epoch or during its validation is acted on at the
  end of that epoch instead: its validation runs, the epoch's own checkpoints are written, and the
  fit stops there (``trainer.should_stop``), so the run resumes at an epoch boundary. (Lightning
  resumes a checkpoint taken after an epoch's last batch as if the epoch had ended: its validation
  and the next epoch's start hooks would never run.) On the run's last epoch the run simply ends;
* a second signal before that raises :class:`RunInterrupted` at once (no new checkpoint).

Lightning's own SIGTERM handling (stop at the end of the epoch, ``SIGTERMException``) is replaced
while the handlers are installed."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from pathlib import Path

import lightning.pytorch as L
from lightning.pytorch.callbacks import Callback

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class RunInterrupted(BaseException):
    """Training stopped on a signal after saving ``checkpoint`` (None: nothing saved). A
    ``BaseException``, like ``KeyboardInterrupt``, so no ``except Exception`` swallows it."""

    def __init__(self, signum: int, checkpoint: str | None) -> None:
        self.signum = int(signum)
        self.checkpoint = checkpoint
        super().__init__(f"{signal.Signals(signum).name}: checkpoint {checkpoint}")


def signal_name(signum: int) -> str:
    return signal.Signals(signum).name


class Interrupt(Callback):
    def __init__(self, checkpoint: str | Path) -> None:
        self.checkpoint = Path(checkpoint)
        self.requested: int | None = None
        self.training = False
        self.stopped_at_epoch_end = False

    # -- signal handling ------------------------------------------------------------------------
    def _handler(self, signum, frame) -> None:
        if not self.training or self.requested is not None:
            self.requested = signum
            raise RunInterrupted(signum, None)
        self.requested = signum

    @contextlib.contextmanager
    def installed(self):
        """Our handlers for SIGINT and SIGTERM for the duration (main thread only)."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = {s: signal.getsignal(s) for s in SIGNALS}
        for s in SIGNALS:
            signal.signal(s, self._handler)
        try:
            yield self
        finally:
            for s, h in previous.items():
                signal.signal(s, h)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Lightning registered its SIGTERM notifier during set-up, after ours: take it back
        if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGINT) == self._handler:
            signal.signal(signal.SIGTERM, self._handler)
        self.training = True

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.training = False

    # -- the interrupt checkpoint ---------------------------------------------------------------
    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx: int
    ) -> None:
        self._sync(trainer)
        if self.requested is None or batch_idx + 1 >= trainer.num_training_batches:
            return  # the last batch: on_train_epoch_end stops the fit once the epoch is complete
        signum = self.requested
        self.training = False  # a further signal during the save stops at once
        self.save(trainer)
        raise RunInterrupted(signum, str(self.checkpoint))

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """A signal noted on the epoch's last batch or during its validation: stop once this epoch's
        end-of-epoch work and checkpoints are done (they run after this hook), unless it was the last."""
        self._sync(trainer)
        if self.requested is None:
            return
        max_epochs = trainer.max_epochs if trainer.max_epochs is not None else -1
        if 0 <= max_epochs <= trainer.current_epoch + 1 or 0 < trainer.max_steps <= trainer.global_step:
            return  # the run's last epoch: it completes
        trainer.should_stop = True
        self.stopped_at_epoch_end = True

    def raise_if_stopped(self) -> None:
        """After ``trainer.fit`` returned: raise :class:`RunInterrupted` if a signal stopped it at an
        epoch's end (the checkpoint is that epoch's ``last.ckpt``)."""
        if self.stopped_at_epoch_end and self.requested is not None:
            raise RunInterrupted(self.requested, str(self.checkpoint))

    def _sync(self, trainer: L.Trainer) -> None:
        if trainer.world_size > 1:  # DDP: every rank acts on the same batch if any rank got the signal
            import torch

            flag = torch.tensor([self.requested or 0], device=trainer.strategy.root_device)
            flag = trainer.strategy.reduce(flag, reduce_op="max")
            self.requested = int(flag.item()) or None

    def save(self, trainer: L.Trainer) -> None:
        """``trainer.save_checkpoint`` to a temporary file beside the target, then ``os.replace``."""
        self.checkpoint.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.checkpoint.with_name(f".{self.checkpoint.name}.{os.getpid()}.tmp")
        try:
            trainer.save_checkpoint(str(tmp))
            if trainer.is_global_zero:
                os.replace(tmp, self.checkpoint)
        finally:
            if tmp.exists():
                tmp.unlink()

    # -- how the train task ends an interrupted run ----------------------------------------------
    def caught(self, e: BaseException) -> bool:
        """``e`` is how a signal ended ``trainer.fit``: our RunInterrupted, a KeyboardInterrupt,
        or Lightning's ``sys.exit(1)`` after a KeyboardInterrupt."""
        return isinstance(e, (RunInterrupted, KeyboardInterrupt)) or (
            isinstance(e, SystemExit) and isinstance(e.__context__, KeyboardInterrupt)
        )

    def stop(self, e: BaseException, trainer: L.Trainer, record, run_dir: str | Path, fresh: bool) -> None:
        """Record ``interrupted`` (if this process had written the record), print one line with
        the resume command, and exit with 128 + the signal number. ``fresh``: a new run (not a
        resume), whose record is removed again when nothing was trained, so the same command
        can simply be run again."""
        from binexp.runs.resume import read_position

        signum = e.signum if isinstance(e, RunInterrupted) else (self.requested or signal.SIGINT)
        where = f"epoch {trainer.current_epoch + 1}, step {trainer.global_step}"  # 1-based, as the epoch line
        folder = Path(run_dir) / "checkpoints"
        has_checkpoint = any(read_position(p) is not None for p in folder.glob("*.ckpt")) if folder.is_dir() else False
        if has_checkpoint:
            if record.last:
                record.write(trainer, status="interrupted")
            saved = "checkpoint saved" if getattr(e, "checkpoint", None) else "resumes from the last checkpoint"
            line = (
                f"binexp: interrupted by {signal_name(signum)} at {where} ({saved}); "
                f"continue with: binexp train resume={run_dir}"
            )
        else:
            if fresh:  # leave nothing that makes the folder look like a run (the same command must work again)
                if record.last:
                    (Path(run_dir) / "metrics.json").unlink(missing_ok=True)
                if folder.is_dir() and not any(folder.iterdir()):
                    folder.rmdir()
            elif record.last:
                record.write(trainer, status="interrupted")
            line = (
                f"binexp: interrupted by {signal_name(signum)} during start-up, before anything was trained; "
                f"run the same command again"
            )
        if trainer.is_global_zero:
            print(line, file=sys.stderr, flush=True)
        raise SystemExit(128 + int(signum))
