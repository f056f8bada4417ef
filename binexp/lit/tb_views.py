"""TensorBoard built for looking: per run, a custom-scalars layout in which every per-layer
statistic is one chart with all layers overlaid (regex tag patterns ``^<stat>/``), and an HParams
entry (the run's overrides as hyperparameters; best and last val top-1 and bits per weight as
metrics), so a sweep is a sortable table in the HParams tab. Both go into the run's TensorBoard
event directory, on rank 0: the HParams entry at fit start, the layout at the end of the first
training epoch of the process, when every layer statistic exists (RBNN's rotation statistics
appear after the first rotation update; TensorBoard reads the first layout of a run)."""

from __future__ import annotations

import lightning.pytorch as L
from lightning.pytorch.callbacks import Callback

# Per-layer statistics that get a chart even when this run does not log them (a chart with no
# matching tag is harmless; other methods and diagnostics add them).
KNOWN_LAYER_STATS = [
    "angular_bias",
    "act_angular_bias",
    "quant_error",
    "quant_error_unscaled",
    "quant_error_rotated",
    "quant_error_mixed",
    "flip_rate",
    "rbnn_alpha_mean",
    "rbnn_theta_dev_max",
    "rbnn_theta_grad_norm",
]
# Values that are the same for every layer of a method: logged once as ``method/<name>``.
METHOD_WIDE = ("rbnn_t", "rbnn_k", "rbnn_act_t", "rbnn_act_k", "rbnn_rotation_updates")
# The run's scalars the HParams table shows as metrics.
HPARAM_METRICS = ("val/acc1_best", "val/acc1", "model/bits_per_weight")
# Overrides that say nothing about the experiment (where things are, how they are shown).
NOT_HPARAMS = (
    "hydra.",
    "resume",
    "init_from",
    "distill.teacher",
    "data.root",
    "verbose",
    "trainer.enable_progress_bar",
    "trainer.num_sanity_val_steps",
    "trainer.devices",
    "trainer.accelerator",
)


def _category(stat: str) -> str:
    if stat.startswith("rbnn_"):
        return "RBNN, every layer"
    if stat.startswith("flexor_"):
        return "FleXOR, every layer"
    return "binarized weights, every layer"


def layout(stats: list[str]) -> dict:
    """The ``add_custom_scalars`` layout: {category: {chart title: ["Multiline", [regex]]}}."""
    out: dict[str, dict] = {
        "training": {
            "loss": ["Multiline", ["^train/loss$", "^val/loss$"]],
            "top-1 (%)": ["Multiline", ["^train/acc1$", "^val/acc1$", "^val/acc1_best$"]],
            "learning rate": ["Multiline", ["^lr-"]],
        }
    }
    for stat in dict.fromkeys([*KNOWN_LAYER_STATS, *stats]):
        if stat in METHOD_WIDE:
            continue
        out.setdefault(_category(stat), {})[stat] = ["Multiline", [f"^{stat}/"]]
    # method-wide values on their own axes (t ~ 1e-2 beside k ~ 1e2 would flatten one of them)
    out["method-wide"] = {f"method/{name}": ["Multiline", [f"^method/{name}$"]] for name in METHOD_WIDE}
    out["method-wide"]["model (bits per weight, ...)"] = ["Multiline", ["^model/"]]
    return out


def hparams_of(static: dict) -> dict:
    """The hyperparameters of one run: what it chose per group, its seed and epochs, and every
    override (so the keys a sweep varies are columns)."""
    choices = static.get("choices") or {}
    hp = {
        group: "none" if choices.get(group) is None else str(choices.get(group))
        for group in ("experiment", "quantizer", "model", "data", "schedule")
    }
    hp["seed"] = "null" if static.get("seed") is None else str(static.get("seed"))
    hp["max_epochs"] = str(static.get("max_epochs"))
    for override in static.get("overrides") or []:
        key, _, value = override.partition("=")
        key = key.lstrip("+~")
        if (
            not _
            or key.startswith(NOT_HPARAMS)
            or key in ("experiment", "quantizer", "model", "data", "schedule", "seed")
        ):
            continue
        hp[key] = value
    return hp


def stat_names(pl_module) -> list[str]:
    """The per-layer scalar names this model's layers log (one layer of each class asked)."""
    from binexp.analysis.diagnostics import layer_stats
    from binexp.quant.layers import quantized_layers

    names: list[str] = []
    seen: set[type] = set()
    for _, layer in quantized_layers(pl_module):
        if type(layer) in seen:
            continue
        seen.add(type(layer))
        try:
            names += list(layer_stats(layer))
        except Exception:  # noqa: BLE001 - a layout is no reason to stop a run
            continue
    return names + ["flip_rate"]


class TensorBoardViews(Callback):
    """Writes the custom-scalars layout and the HParams session of this run (rank 0, fit start)."""

    def __init__(self, static: dict) -> None:
        self.static = static
        self._layout_written = False

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        from lightning.pytorch.loggers import TensorBoardLogger

        bits = self.static.get("bits_per_weight")
        if bits is not None:  # a metric of the HParams table, and a scalar every logger gets
            for logger in trainer.loggers:
                logger.log_metrics({"model/bits_per_weight": float(bits)}, step=trainer.global_step)
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                write_hparams(logger.experiment, self.static)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._layout_written or not trainer.is_global_zero:
            return
        from lightning.pytorch.loggers import TensorBoardLogger

        self._layout_written = True
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                logger.experiment.add_custom_scalars(layout(stat_names(pl_module)))
                logger.experiment.flush()


def swept_hparams() -> set[str]:
    """The keys ``binexp train -m`` sweeps (the HParams columns that differ between runs)."""
    import os

    from binexp.env import SWEPT_ENV

    return {k for k in os.environ.get(SWEPT_ENV, "").split(",") if k}


def mark_differs(exp_summary, names: set[str]) -> None:
    """Flag the swept hyperparameters as ``differs``: TensorBoard lists those first and shows the
    first five columns by default, so the swept keys are visible without clicking."""
    from tensorboard.plugins.hparams import plugin_data_pb2

    value = exp_summary.value[0]
    data = plugin_data_pb2.HParamsPluginData.FromString(value.metadata.plugin_data.content)
    for info in data.experiment.hparam_infos:
        info.differs = info.name in names
    value.metadata.plugin_data.content = data.SerializeToString()


def write_hparams(writer, static: dict) -> None:
    from torch.utils.tensorboard.summary import hparams

    exp, ssi, sei = hparams(hparams_of(static), {m: 0.0 for m in HPARAM_METRICS})
    mark_differs(exp, swept_hparams())
    file_writer = writer._get_file_writer()
    for summary in (exp, ssi, sei):
        file_writer.add_summary(summary)
    writer.flush()


__all__ = [
    "HPARAM_METRICS",
    "KNOWN_LAYER_STATS",
    "METHOD_WIDE",
    "TensorBoardViews",
    "hparams_of",
    "layout",
    "write_hparams",
]
