"""Callbacks: per-epoch quantizer work, per-layer TensorBoard diagnostics, and the run record
(``metrics.json``)."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import lightning.pytorch as L
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger
from omegaconf import DictConfig

from binexp.analysis.diagnostics import flip_rate, layer_stats, weight_signs
from binexp.errors import BinexpError
from binexp.lit.act_diagnostics import run_records
from binexp.optimizer import lr_decays_before, max_epochs
from binexp.quant.layers import quantized_layers
from binexp.runs.allowlist import check_targets
from binexp.runs.layout import CHECKPOINT_DIR  # <run dir>/checkpoints: last.ckpt and the best epoch


class QuantizerSchedule(Callback):
    """Calls ``layer.epoch_start(epoch, max_epochs)`` on every binarized layer before the first
    training step of each epoch (never in validation or the sanity check), and
    ``layer.step_start(epoch, step)`` / ``layer.step_end(epoch, step)`` around every training step.
    On resume the epoch hook runs for the resumed epoch, so schedule values are recomputed, not
    restored. A checkpoint taken
    inside an epoch (an interrupt, or ``last.ckpt`` at validation end) records that the epoch
    started; Lightning does not rerun ``on_train_epoch_start`` for it, so at train start the
    layers re-enter it with ``resume_epoch`` (schedule values only: RBNN's rotation for the
    epoch is already in the restored R1, R2)."""

    def __init__(self) -> None:
        self.epoch_started: int | None = None

    def state_dict(self) -> dict:
        return {"epoch_started": self.epoch_started}

    def load_state_dict(self, state: dict) -> None:
        self.epoch_started = state.get("epoch_started")

    @staticmethod
    def _decays(trainer: L.Trainer, pl_module: L.LightningModule) -> int:
        schedule = getattr(pl_module, "schedule_cfg", None)
        return lr_decays_before(schedule, trainer.current_epoch) if schedule is not None else 0

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.epoch_started is not None and self.epoch_started == trainer.current_epoch:
            for _, layer in quantized_layers(pl_module):
                layer.resume_epoch(trainer.current_epoch, max_epochs(trainer), self._decays(trainer, pl_module))

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        decays = self._decays(trainer, pl_module)
        for _, layer in quantized_layers(pl_module):
            layer.epoch_start(trainer.current_epoch, max_epochs(trainer), decays)
        self.epoch_started = trainer.current_epoch

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch, batch_idx: int) -> None:
        for _, layer in quantized_layers(pl_module):
            layer.step_start(trainer.current_epoch, trainer.global_step)

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx: int
    ) -> None:
        for _, layer in quantized_layers(pl_module):
            layer.step_end(trainer.current_epoch, trainer.global_step)

    def on_before_optimizer_step(self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer) -> None:
        for _, layer in quantized_layers(pl_module):
            layer.before_optimizer_step()


def _tensorboard(trainer: L.Trainer):
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            return logger.experiment
    return None


class LayerDiagnostics(Callback):
    """Every ``every_n_epochs`` epochs, on rank 0 only, logs for each binarized layer:
    ``angular_bias/<layer>`` (the angle(w, sign w) in degrees), ``quant_error/<layer>``,
    ``flip_rate/<layer>`` (signs changed since the previous log), the layer's own ``extra_stats``
    and histograms of its latent weights (also once before training, at step 0),
    and a method's model-level ``model_report`` numbers as ``model/<key>``. Scalars go to every
    configured logger (``log_metrics``: TensorBoard, CSV, ...); histograms to TensorBoard only.
    A statistic that every layer shares (RBNN's t, k, rotation count: ``tb_views.METHOD_WIDE``)
    is logged once, as ``method/<name>``. Scalars get the global step (TensorBoard's logger writes
    the epoch instead); histograms the epoch (1 = after the first; 0 = before training)."""

    def __init__(self, every_n_epochs: int = 1, histograms: bool = True) -> None:
        self.every_n_epochs = max(1, int(every_n_epochs))
        self.histograms = histograms
        self._previous_signs: dict[str, torch.Tensor] = {}

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Histograms of the untrained latent weights at global step 0 (epoch 0 of ``binexp plot
        weight_hist``); a resumed run (global step > 0) logged them already."""
        writer = _tensorboard(trainer)
        if not trainer.is_global_zero or not self.histograms or writer is None or trainer.global_step:
            return
        for name, layer in quantized_layers(pl_module):
            for hist, tensor in layer.histograms().items():
                writer.add_histogram(f"{hist}/{name.removeprefix('net.')}", tensor.detach().float().cpu(), 0)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero or trainer.current_epoch % self.every_n_epochs:
            return
        from binexp.lit.tb_views import METHOD_WIDE

        writer = _tensorboard(trainer)
        step = trainer.global_step
        epoch = trainer.current_epoch + 1
        scalars: dict[str, float] = {}
        shared: dict[str, list[float]] = {}
        for name, layer in quantized_layers(pl_module):
            name = name.removeprefix("net.")
            for stat, value in layer_stats(layer).items():
                if stat in METHOD_WIDE:
                    shared.setdefault(stat, []).append(float(value))
                else:
                    scalars[f"{stat}/{name}"] = float(value)
            signs = weight_signs(layer)
            prev = self._previous_signs.get(name)
            if prev is not None and prev.shape == signs.shape:
                scalars[f"flip_rate/{name}"] = float(flip_rate(signs, prev))
            self._previous_signs[name] = signs
            if self.histograms and writer is not None:
                for hist, tensor in layer.histograms().items():
                    values = tensor.detach().float().cpu().flatten()
                    values = values[torch.isfinite(values)]  # a diverged run: TensorBoard refuses NaN/inf
                    if values.numel():
                        writer.add_histogram(f"{hist}/{name}", values, epoch)
        for stat, per_layer in shared.items():
            scalars[f"method/{stat}"] = per_layer[0]
        # model-level aggregates of a method (FleXOR's bits per weight, effective bits...): ``model/<key>``
        layers = [layer for _, layer in quantized_layers(pl_module)]
        for cls in dict.fromkeys(type(layer) for layer in layers):
            hook = getattr(cls, "model_report", None)
            if callable(hook):
                for key, value in hook([layer for layer in layers if type(layer) is cls]).items():
                    if isinstance(value, (int, float)):
                        scalars[f"model/{key}"] = float(value)
        if scalars:
            for logger in trainer.loggers:
                logger.log_metrics(scalars, step=step)


class RunRecord(Callback):
    """Keeps ``metrics.json`` in the run directory current: written at fit start (status
    ``running``), after every epoch once its checkpoints are on disk (the numbers of its
    validation, written at the next epoch's start or at the end of training, so that the epochs
    it records are the epochs a resume continues after), and finally by the train task
    (``completed`` or ``failed``). Wall time and throughput accumulate across resumes (the
    callback is stateful)."""

    def __init__(self, run_dir: str, static: dict, previous: dict | None = None) -> None:
        self.path = Path(run_dir) / "metrics.json"
        self.static = static
        self.previous = previous or {}  # a resumed run's record: its numbers stand until new ones exist
        self.wall_time_s = 0.0
        self.train_time_s = 0.0
        self.train_images = 0
        self.epochs_done = 0
        self._fit_t0: float | None = None
        self._epoch_t0: float | None = None
        self.last: dict = {}
        self._pending: dict | None = None  # this epoch's record, written once its checkpoints are
        self._restored_pending: dict | None = None
        self._trainer: L.Trainer | None = None

    # stateful across resume
    def state_dict(self) -> dict:
        self._tick()
        if self._pending is not None and self._trainer is not None:
            # an epoch-end checkpoint: the epoch's record with its train metrics (logged after validation)
            self._pending = self.compose(self._trainer, status="running")
        return {
            "wall_time_s": self.wall_time_s,
            "train_time_s": self.train_time_s,
            "train_images": self.train_images,
            "epochs_done": self.epochs_done,
            # at an epoch's end: that epoch's record (a run that dies before writing it resumes with it)
            "pending": None if self._pending is None else json.loads(json.dumps(self._pending)),  # plain data
        }

    def load_state_dict(self, state: dict) -> None:
        self.wall_time_s = float(state.get("wall_time_s", 0.0))
        self.train_time_s = float(state.get("train_time_s", 0.0))
        self.train_images = int(state.get("train_images", 0))
        self.epochs_done = int(state.get("epochs_done", 0))
        self._restored_pending = state.get("pending")

    def _tick(self) -> None:
        now = time.perf_counter()
        if self._fit_t0 is not None:
            self.wall_time_s += now - self._fit_t0
            self._fit_t0 = now

    def on_fit_start(self, trainer, pl_module) -> None:
        self._trainer = trainer
        self._fit_t0 = time.perf_counter()
        restored, self._restored_pending = self._restored_pending, None
        if isinstance(restored, dict) and int(restored.get("epochs") or 0) > int(self.previous.get("epochs") or 0):
            # the checkpoint ends an epoch whose record was never written (the run died writing checkpoints)
            self.previous = {**self.previous, **restored}
        self.write(trainer, status="running")

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._flush(trainer)  # the previous epoch's checkpoints are written by now
        self._epoch_t0 = time.perf_counter()

    def on_train_end(self, trainer, pl_module) -> None:
        self._flush(trainer)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        self.train_images += int(batch[1].shape[0]) * trainer.world_size

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if self._epoch_t0 is not None:
            self.train_time_s += time.perf_counter() - self._epoch_t0
        self.epochs_done = trainer.current_epoch + 1

    def on_validation_end(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking:
            self.epochs_done = max(self.epochs_done, trainer.current_epoch + 1)  # this epoch's training is done
            self._pending = self.compose(trainer, status="running")  # written once the epoch's checkpoint is

    _METRIC_KEYS = (
        "val_acc1",
        "best_val_acc1",
        "val_acc5",
        "val_loss",
        "train_acc1",
        "train_loss",
        "train_images_per_s",
    )

    def metrics(self, trainer) -> dict:
        m = {k: float(v) for k, v in trainer.callback_metrics.items() if torch.is_tensor(v) and v.numel() == 1}
        best = m.get("val/acc1_best")
        ckpt = trainer.checkpoint_callback
        if ckpt is not None and ckpt.best_model_score is not None:
            best = max(best or -math.inf, float(ckpt.best_model_score))
        out = {
            "val_acc1": m.get("val/acc1"),
            "best_val_acc1": best,
            "val_acc5": m.get("val/acc5"),
            "val_loss": m.get("val/loss"),
            "train_acc1": m.get("train/acc1"),
            "train_loss": m.get("train/loss"),
            "epochs": self.epochs_done,
            "global_step": trainer.global_step,
            "wall_time_s": round(self.wall_time_s, 3),
            "train_images_per_s": round(self.train_images / self.train_time_s, 2) if self.train_time_s > 0 else None,
        }
        return out

    def _flush(self, trainer) -> None:
        if self._pending is not None:
            self._save(trainer, self._pending)
            self._pending = None

    def write(self, trainer, status: str, error: str | None = None) -> dict:
        self._pending = None
        return self._save(trainer, self.compose(trainer, status, error))

    def _save(self, trainer, record: dict) -> dict:
        self.last = record
        if trainer.is_global_zero:
            from binexp.safeio import atomic_write_text

            atomic_write_text(self.path, json.dumps(record, indent=2, sort_keys=True))
        return record

    def compose(self, trainer, status: str, error: str | None = None) -> dict:
        self._tick()
        record = dict(self.static)
        record.update(self.metrics(trainer))
        record.update(run_records(trainer))  # per-layer values of this moment (alpha_final, act_angular_bias...)
        for key, value in record.items():
            if value is None and self.previous.get(key) is not None and key in self._METRIC_KEYS:
                record[key] = self.previous[key]
        record["status"] = status
        if error:
            record["error"] = error
        return record


def build_callbacks(cfg: DictConfig, run_dir: Path | None) -> list[L.Callback]:
    """Instantiate every ``callbacks.<name>`` entry that has a ``_target_`` (null one to turn
    it off); the checkpoint callback writes to ``<run dir>/checkpoints``."""
    callbacks: list[L.Callback] = []
    for key, node in (cfg.get("callbacks") or {}).items():
        if node is None or "_target_" not in node:
            continue
        check_targets(node, f"callbacks.{key}")
        try:
            cb = instantiate(node)
        except Exception as e:  # noqa: BLE001 - report config mistakes in one line
            cause = e.__cause__ or e
            raise BinexpError(
                f"callbacks.{key} cannot be built: {str(cause).splitlines()[0]}; fix: check its fields"
            ) from None
        if isinstance(cb, ModelCheckpoint) and run_dir is not None:
            cb.dirpath = str(run_dir / CHECKPOINT_DIR)
        callbacks.append(cb)
    return callbacks
