"""One line per epoch, through the ``binexp`` logger (so Hydra's job logging puts it on the
console and in ``train.log``), whatever the progress-bar setting:

    epoch  2/10  train loss 1.9012 top-1 20.90%  val top-1 36.33% (best 36.33%)  lr 0.1  31.2 s  41 img/s  ETA 0:04:10

Measured on rank 0 at the end of each training epoch (after that epoch's validation) and
written once that epoch's checkpoints are on disk (at the next epoch's start, or at the end of
training), so a run killed while writing them, which repeats the epoch on resume, has one line
per epoch all the same (every ``binexp.epoch`` line of that moment, e.g. the divergence report,
is held back with it and follows it); a run resumed in the middle of an epoch writes the line of the epoch it
finishes (timed from the resume). The train loss and top-1 are the module's epoch metrics
(``train_loss``/``train_acc1``), read before the module resets them; images/s counts training
batches only (validation time excluded); the ETA is the mean epoch time of this process times
the epochs left; the LR is the one the epoch trained with."""

from __future__ import annotations

import logging
import time

import lightning.pytorch as L
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint

log = logging.getLogger("binexp.epoch")


def _metric(value) -> float | None:
    if value is None:
        return None
    try:
        v = float(value.compute() if hasattr(value, "compute") else value)
    except Exception:  # noqa: BLE001 - a metric with no update yet
        return None
    return v  # NaN and inf print as such: a diverged run shows it


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def _lr(value: float) -> str:
    return f"{value:.4g}"


class _Hold(logging.Filter):
    """Holds back the records of a logger while ``holding``; :meth:`release` logs them in order."""

    def __init__(self) -> None:
        super().__init__()
        self.holding = False
        self.records: list[logging.LogRecord] = []

    def filter(self, record: logging.LogRecord) -> bool:
        if self.holding:
            self.records.append(record)
            return False
        return True

    def release(self) -> None:
        self.holding = False
        records, self.records = self.records, []
        for record in records:
            log.handle(record)


class EpochLine(Callback):
    """``logged_epochs``: how many epochs' lines the run's log already has (a resumed run's
    ``metrics.json`` epochs, written at the same moment as the line)."""

    def __init__(self, logged_epochs: int = 0) -> None:
        self.logged_epochs = int(logged_epochs)
        self._held_epoch = 0
        self._restored: dict = {}
        self._epoch_t0: float | None = None
        self._val_time = 0.0
        self._val_t0: float | None = None
        self._images = 0
        self._epoch_times: list[float] = []
        self._lr: float | None = None
        self._hold = _Hold()

    def state_dict(self) -> dict:
        """At an epoch's end (its checkpoints): that epoch's held lines, so that a run that dies
        before writing them and resumes from such a checkpoint writes them then."""
        held = [[r.levelno, r.name, r.getMessage()] for r in self._hold.records]
        return {"held": held, "epoch": self._held_epoch} if held else {}

    def load_state_dict(self, state: dict) -> None:
        self._restored = dict(state or {})

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        for stale in [f for f in log.filters if isinstance(f, _Hold)]:  # an earlier run of this process that failed
            log.removeFilter(stale)
        log.addFilter(self._hold)

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        log.removeFilter(self._hold)
        self._hold.holding = False
        self._hold.records = []  # an epoch whose checkpoint was never written: it runs again on resume

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        # a failed run (a full disk, bad data) may end before teardown: the filter must not outlive it, or the
        # next run in this process (in-process tests, a sweep's jobs in the basic launcher) loses its lines
        self.teardown(trainer, pl_module, "fit")

    def _flush(self) -> None:
        self._hold.release()

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # (checkpoint state is restored before fit start; a run resumed at its last epoch's end never starts training)
        restored, self._restored = self._restored, {}
        if restored.get("held") and int(restored.get("epoch") or 0) > self.logged_epochs:
            for level, name, message in restored["held"]:
                logging.getLogger(str(name)).log(int(level), "%s", message)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # a run resumed mid-epoch gets no on_train_epoch_start for the epoch it finishes
        self._epoch_t0 = time.perf_counter()
        self._lr = next((g["lr"] for opt in trainer.optimizers for g in opt.param_groups), None)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._flush()

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._flush()  # the previous epoch's checkpoints are written by now
        self._epoch_t0 = time.perf_counter()
        self._val_time = 0.0
        self._images = 0
        # the LR this epoch trains with (the epoch scheduler may step before on_train_epoch_end)
        self._lr = next((g["lr"] for opt in trainer.optimizers for g in opt.param_groups), None)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        x = batch[0] if isinstance(batch, (list, tuple)) else batch
        if torch.is_tensor(x):
            self._images += int(x.shape[0]) * trainer.world_size

    def on_validation_start(self, trainer, pl_module) -> None:
        self._val_t0 = time.perf_counter()

    def on_validation_end(self, trainer, pl_module) -> None:
        if self._val_t0 is not None and self._epoch_t0 is not None:
            self._val_time += time.perf_counter() - self._val_t0
        self._val_t0 = None

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # every rank computes the epoch metrics (a DDP sync); rank 0 writes the line
        loss = _metric(getattr(pl_module, "train_loss", None))
        acc1 = _metric(getattr(pl_module, "train_acc1", None))
        if self._epoch_t0 is None or not trainer.is_global_zero:
            return
        elapsed = time.perf_counter() - self._epoch_t0
        self._epoch_times.append(elapsed)
        train_time = max(elapsed - self._val_time, 1e-9)
        m = trainer.callback_metrics
        val, best = _metric(m.get("val/acc1")), _metric(m.get("val/acc1_best"))
        epoch, max_epochs = trainer.current_epoch + 1, trainer.max_epochs
        if epoch <= self.logged_epochs:  # trained again after a resume from an older checkpoint: its line is logged
            return
        width = len(str(max_epochs)) if max_epochs and max_epochs > 0 else 1
        parts = [
            f"epoch {epoch:>{width}}/{max_epochs}",
            "train loss "
            + ("–" if loss is None else f"{loss:.4f}")
            + " top-1 "
            + ("–" if acc1 is None else f"{100 * acc1:.2f}%"),
            "val top-1 "
            + ("–" if val is None else f"{val:.2f}%")
            + (f" (best {best:.2f}%)" if best is not None else ""),
        ]
        if self._lr is not None:
            parts.append(f"lr {_lr(self._lr)}")
        parts.append(f"{elapsed:.1f} s")
        parts.append(f"{self._images / train_time:,.0f} img/s")
        if max_epochs and max_epochs > 0:
            left = max(max_epochs - epoch, 0)
            parts.append(f"ETA {_clock(left * sum(self._epoch_times) / len(self._epoch_times))}")
        self._hold.holding = True  # until this epoch's checkpoints are written (this and later lines)
        self._held_epoch = epoch
        log.info("  ".join(parts))


def rich_bar():
    """Lightning's RichProgressBar without ``v_num`` (the logger version: here the run directory
    name, which the bar would cut to its last four characters)."""
    from lightning.pytorch.callbacks import RichProgressBar

    class Bar(RichProgressBar):
        def get_metrics(self, trainer, pl_module):
            items = super().get_metrics(trainer, pl_module)
            items.pop("v_num", None)
            return items

        def _get_train_description(self, current_epoch: int) -> str:
            # 1-based, as the epoch line, checkpoint names and messages count ("Epoch 1/2", not "Epoch 0/1")
            text = f"Epoch {current_epoch + 1}" + (f"/{self.trainer.max_epochs}" if self.trainer.max_epochs else "")
            return f"{text:{len(self.validation_description)}}"

    return Bar()


class EpochCheckpoint(ModelCheckpoint):
    """Lightning's ``ModelCheckpoint`` whose ``{epoch}`` in a file name is the 1-based epoch just
    trained (``epoch002-acc27.15.ckpt`` holds the second epoch), as every other place a person
    reads an epoch counts."""

    def format_checkpoint_name(self, metrics, filename=None, ver=None, prefix=None) -> str:
        if "epoch" in metrics:
            metrics = {**metrics, "epoch": metrics["epoch"] + 1}
        return super().format_checkpoint_name(metrics, filename=filename, ver=ver, prefix=prefix)


__all__ = ["EpochCheckpoint", "EpochLine", "rich_bar"]
