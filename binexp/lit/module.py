"""The LightningModule: cross-entropy classification with torchmetrics top-1/top-5."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Protocol

import lightning.pytorch as L
import torch
import torch.nn.functional as F
from torchmetrics import MaxMetric, MeanMetric
from torchmetrics.classification import MulticlassAccuracy

from binexp.errors import BinexpError
from binexp.lit.angle_penalty import angle_penalty
from binexp.lit.distill import DistillConfig, FeatureTap, attention_transfer_loss, block_names, distillation_loss
from binexp.models import ModelConfig, build_model
from binexp.optimizer import ScheduleConfig, build_optimizer, build_scheduler, max_epochs
from binexp.quant import ConvFactory, quantized_layers


class ClassifierModule(L.LightningModule):
    """Builds the network from the validated model and quantizer configs; the optimizer and
    per-epoch LR schedule come from ``schedule``. ``hparams`` holds only plain containers (the
    resolved run config) so checkpoints load with ``weights_only`` torch.load."""

    def __init__(
        self,
        model_cfg,
        quantizer_cfg,
        schedule_cfg: ScheduleConfig,
        num_classes: int,
        run_config: dict | None = None,
        angle_penalty: float = 0.0,
    ) -> None:
        super().__init__()
        self.angle_penalty = float(angle_penalty)  # lambda of binexp.lit.angle_penalty (0 = off)
        self.save_hyperparameters({"run_config": run_config or {}, "num_classes": num_classes})
        self.schedule_cfg = schedule_cfg
        self.net = build_model(model_cfg, ConvFactory(quantizer_cfg), num_classes)
        self.num_classes = num_classes
        top5 = min(5, num_classes)
        self.train_acc1 = MulticlassAccuracy(num_classes, top_k=1, average="micro")
        self.val_acc1 = MulticlassAccuracy(num_classes, top_k=1, average="micro")
        self.val_acc5 = MulticlassAccuracy(num_classes, top_k=top5, average="micro")
        # a NaN loss stays NaN (torchmetrics would drop it with a warning and hide a divergence)
        self.train_loss = MeanMetric(nan_strategy="disable")
        self.val_loss = MeanMetric(nan_strategy="disable")
        self.val_acc1_best = MaxMetric()
        self.val_acc1_best.persistent(True)  # the best accuracy survives resume

    def set_teacher(self, teacher: torch.nn.Module, cfg: DistillConfig) -> None:
        """Distil from a frozen teacher; it is not a submodule, so it stays out of checkpoints,
        optimizers and ``train()``/``eval()`` switches."""
        object.__setattr__(self, "_teacher", teacher)
        self.distill_cfg = cfg
        if cfg.attention_weight > 0:  # attention transfer: hooks after every block of both networks
            if getattr(self.net, "_compiled_call_impl", None) is not None:
                raise BinexpError(
                    "distill.attention_weight > 0 reads block outputs through forward hooks, "
                    "not supported with compile=true; fix: compile=false"
                )
            names = block_names(self.net)
            if not names or names != block_names(teacher):
                raise BinexpError(
                    f"distill.attention_weight needs student and teacher with the same ResNet blocks (layer1.0, ...); "
                    f"got {len(names)} and {len(block_names(teacher))}; "
                    f"fix: a ResNet teacher of the student's architecture"
                )
            self.__dict__["_attention_taps"] = (FeatureTap(self.net, names), FeatureTap(teacher, names))

    @property
    def teacher(self) -> torch.nn.Module | None:
        return self.__dict__.get("_teacher")

    def on_fit_start(self) -> None:
        if self.teacher is not None:
            self.teacher.to(self.device).eval()

    def use_channels_last(self) -> None:
        self.net.to(memory_format=torch.channels_last)
        self.channels_last = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.__dict__.get("channels_last"):
            x = x.contiguous(memory_format=torch.channels_last)
        return self.net(x)

    def training_step(self, batch, batch_idx: int):
        x, y = batch
        teacher_logits = None
        with contextlib.ExitStack() as stack:  # attention transfer: block outputs of student and teacher
            feats = [stack.enter_context(tap.capture()) for tap in self.__dict__.get("_attention_taps", ())]
            logits = self(x)
            if self.teacher is not None:
                with torch.no_grad():
                    teacher_logits = self.teacher(x)
        if teacher_logits is None:
            loss = F.cross_entropy(logits, y, label_smoothing=self.schedule_cfg.label_smoothing)
        else:
            loss = distillation_loss(logits, teacher_logits, y, self.distill_cfg)
        if feats:
            attention = attention_transfer_loss(*feats)
            loss = loss + self.distill_cfg.attention_weight * attention
            self.log("train/attention_loss", attention.detach(), on_step=False, on_epoch=True)
        if self.angle_penalty > 0:  # RBNN reviewer 2: penalise the angle to sign(w) instead of rotating
            penalty = angle_penalty(self.net)
            loss = loss + self.angle_penalty * penalty
            self.log("train/angle_penalty", penalty.detach(), on_step=False, on_epoch=True)
        self.train_loss(loss)
        self.train_acc1(logits, y)
        self.log("train/loss", self.train_loss, on_step=False, on_epoch=True, prog_bar=True)
        return loss

    def on_train_epoch_start(self) -> None:
        # a new epoch starts from empty accumulators: a checkpoint written at an epoch's end still
        # holds that epoch's (Lightning resets train/loss after the checkpoint callbacks ran)
        self.train_loss.reset()
        self.train_acc1.reset()

    def on_train_epoch_end(self) -> None:
        self.log("train/acc1", self.train_acc1.compute() * 100, prog_bar=True, sync_dist=True)
        self.train_acc1.reset()

    _EPOCH_METRICS = ("train_acc1", "train_loss")

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """The running train metrics of an epoch in progress (a checkpoint taken mid-epoch), so
        a resumed epoch reports the same train/acc1 and train/loss; outside ``state_dict`` so
        the network's keys stay what ``init_from`` and ``export`` read."""
        checkpoint["binexp_epoch_metrics"] = {
            name: {
                "state": {k: v.detach().clone() for k, v in getattr(self, name).metric_state.items()},
                "updates": int(getattr(self, name)._update_count),
            }
            for name in self._EPOCH_METRICS
        }

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        for name, saved in (checkpoint.get("binexp_epoch_metrics") or {}).items():
            metric = getattr(self, name, None)
            if metric is None:
                continue
            for key, value in saved["state"].items():
                current = getattr(metric, key)
                setattr(metric, key, value.to(current.device) if torch.is_tensor(current) else value)
            metric._update_count = int(saved["updates"])
            metric._computed = None

    def validation_step(self, batch, batch_idx: int) -> None:
        x, y = batch
        logits = self(x)
        self.val_loss(F.cross_entropy(logits, y))
        self.val_acc1(logits, y)
        self.val_acc5(logits, y)

    def on_validation_epoch_end(self) -> None:
        acc1 = self.val_acc1.compute() * 100
        acc5 = self.val_acc5.compute() * 100
        self.log("val/loss", self.val_loss.compute(), sync_dist=True)
        self.log("val/acc1", acc1, prog_bar=True, sync_dist=True)
        self.log("val/acc5", acc5, sync_dist=True)
        if not self.trainer.sanity_checking:
            self.val_acc1_best(acc1)
            self.log("val/acc1_best", self.val_acc1_best.compute(), sync_dist=True)
        self.val_loss.reset()
        self.val_acc1.reset()
        self.val_acc5.reset()

    def test_step(self, batch, batch_idx: int) -> None:
        self.validation_step(batch, batch_idx)

    def on_test_epoch_end(self) -> None:
        self.on_validation_epoch_end()

    def optimizer_params(self) -> list[dict]:
        """The trainable parameters (``requires_grad``; FDA's ``act_noise=frozen`` modules stay
        out) in one group, or in two when only some are decayed: those with the schedule's
        weight decay, then everything else with none. Who is decayed: the parameters a
        binarized layer names (``weight_decay_only()``, FleXOR's ``weight_decay_on=encrypted``),
        else ``schedule.weight_decay_on=conv_weights``: ReActNet's rule (official ``train.py``),
        every 4-D parameter or one with ``conv`` in its name."""
        named = [(n, p) for n, p in self.named_parameters() if p.requires_grad]
        only = [getattr(layer, "weight_decay_only", lambda: None)() for _, layer in quantized_layers(self.net)]
        if any(o is not None for o in only):
            ids = {id(p) for o in only if o for p in o}
            decayed = [p for _, p in named if id(p) in ids]
        elif self.schedule_cfg.weight_decay_on == "conv_weights":
            decayed = [p for n, p in named if p.ndim == 4 or "conv" in n]
        else:
            return [{"params": [p for _, p in named]}]
        ids = {id(p) for p in decayed}
        return [{"params": decayed}, {"params": [p for _, p in named if id(p) not in ids], "weight_decay": 0.0}]

    def configure_optimizers(self):
        optimizer = build_optimizer(self.schedule_cfg, self.optimizer_params())
        scheduler = build_scheduler(self.schedule_cfg, optimizer, max_epochs(self.trainer))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}


class ModuleSettings(Protocol):
    """What a :class:`ClassifierModule` is built from: a validated :class:`binexp.config.RunConfig`,
    or :class:`SavedSettings` rebuilt from a checkpoint's saved config."""

    model: ModelConfig
    quantizer: Any
    schedule: ScheduleConfig
    angle_penalty: float


@dataclass
class SavedSettings:
    """The module-building part of a run config read back from a checkpoint (``binexp.lit.restore``)."""

    model: ModelConfig
    quantizer: Any
    schedule: ScheduleConfig
    angle_penalty: float = 0.0  # evaluation, export and summaries never train


def build_classifier(settings: ModuleSettings, num_classes: int, run_config: dict | None = None) -> ClassifierModule:
    """The one place a :class:`ClassifierModule` is assembled from a run config (train, the
    preflight checks, ``binexp summary``, and every rebuild from a checkpoint use it)."""
    return ClassifierModule(
        settings.model,
        settings.quantizer,
        settings.schedule,
        num_classes,
        run_config=run_config,
        angle_penalty=settings.angle_penalty,
    )
