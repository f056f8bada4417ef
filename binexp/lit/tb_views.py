"""TensorBoard built for looking. Every scalar is written with the epoch as its step
(:class:`EpochTensorBoardLogger`: the x axis reads epochs, 1 = after the first). Per run, a
custom-scalars layout whose first, open category compares the runs on val top-1, the angular
bias of weights and activations and each scale α (means over layers, ``layer_mean/<stat>``);
then the training curves (train and val loss apart); then one category per per-layer statistic
with one chart per layer titled by the layer's name (folded but for the first category's
statistics). Only tags the run logs get a chart. And an HParams entry (the run's overrides as
hyperparameters; best and last val top-1 and bits per weight as metrics), so a sweep is a
sortable table in the HParams tab. Both go into the run's TensorBoard event directory, on rank
0: the HParams entry at fit start, the layout at the end of the first training epoch of the
process, when every layer statistic exists (RBNN's rotation statistics appear after the first
rotation update; TensorBoard reads the first layout of a run)."""

from __future__ import annotations

import re
from collections.abc import Mapping

import lightning.pytorch as L
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only

from binexp.tb_tags import tb_tag

# Values that are the same for every layer of a method: logged once as ``method/<name>``.
METHOD_WIDE = ("rbnn_t", "rbnn_k", "rbnn_act_t", "rbnn_act_k", "rbnn_rotation_updates")
# The run's scalars the HParams table shows as metrics.
HPARAM_METRICS = ("val/acc1_best", "val/acc1", "model/bits_per_weight")
# Per-layer statistics whose mean over layers is also written (``layer_mean/<stat>``), so runs
# compare in one line each: the angular bias of weights and activations, and every scale α.
COMPARED_STATS = ("angular_bias", "act_angular_bias")
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
FIRST_CATEGORY = "runs compared: val top-1, angular bias, α (mean over layers)"


def compared(stat: str) -> bool:
    """A statistic of the first screen: angular bias (weights, activations) or a scale α."""
    return stat in COMPARED_STATS or ("alpha" in stat and "bits" not in stat)


def _category(stat: str) -> str:
    if stat.startswith("rbnn_"):
        return "RBNN, every layer"
    if stat.startswith("flexor_"):
        return "FleXOR, every layer"
    return "binarized weights, every layer"


def _exact(tag: str) -> str:
    """The pattern of the TensorBoard tag of the logged scalar ``tag``, and only of it."""
    return f"^{re.escape(tb_tag(tag))}$"


def layout(tags: list[str]) -> list[tuple[str, bool, dict[str, list[str]]]]:
    """The custom-scalars layout for the scalar ``tags`` a run logs, in the order TensorBoard
    shows it: ``[(category, closed, {chart title: [regex]})]``. First (open) the runs compared:
    val top-1, each α and the angular biases as means over layers, one line per run; then the
    training curves (train and val loss on separate charts); then one category per per-layer
    statistic with one chart per layer, titled by the layer (every run overlaid; open for the
    statistics of the first category, folded for the rest);
    last the method-wide values, each on its own axes. Only tags the run logs get a chart."""
    seen = dict.fromkeys(tags)
    per_layer: dict[str, list[str]] = {}
    for tag in seen:
        stat, sep, layer = tag.partition("/")
        if sep and stat not in ("train", "val", "method", "model", "layer_mean") and not stat.startswith("lr-"):
            per_layer.setdefault(stat, []).append(layer)
    first = {"val top-1 (%)": [_exact("val/acc1")]}
    # angular biases first, then the α of each method: the order stays when TensorBoard merges the
    # layouts of runs with and without an α
    means = [s for s in COMPARED_STATS if s in per_layer]
    means += [s for s in per_layer if compared(s) and s not in COMPARED_STATS]
    for stat in means:
        first[f"{stat} (mean over layers)"] = [_exact(f"layer_mean/{stat}")]
    training: dict[str, list[str]] = {}
    for tag, title in (
        ("val/acc1_best", "best val top-1 (%)"),
        ("train/acc1", "train top-1 (%)"),
        ("val/acc5", "val top-5 (%)"),
        ("train/loss", "train loss"),
        ("val/loss", "val loss"),
    ):
        if tag in seen:
            training[title] = [_exact(tag)]
    for tag in seen:
        if tag.startswith("train/") and tag not in ("train/acc1", "train/loss"):
            training[tag] = [_exact(tag)]  # angle penalty, attention loss ...
    if any(t.startswith("lr-") for t in seen):
        training["learning rate"] = [f"^{re.escape(tb_tag('lr-'))}"]
    out: list[tuple[str, bool, dict[str, list[str]]]] = [(FIRST_CATEGORY, False, first), ("training", False, training)]
    ordered = means + [s for s in per_layer if s not in means]
    for stat in ordered:
        charts = {f"{stat} · {layer}": [_exact(f"{stat}/{layer}")] for layer in per_layer[stat]}
        out.append((f"{stat}, per layer ({_category(stat)})", stat not in means, charts))
    wide = {t: [_exact(t)] for t in seen if t.startswith("method/")}
    wide.update({t: [_exact(t)] for t in seen if t.startswith("model/") and t not in HPARAM_METRICS})
    if wide:
        out.append(("method-wide", False, wide))
    return out


def layout_summary(lay: list[tuple[str, bool, dict[str, list[str]]]]):
    """The ``custom_scalars__config__`` summary of a layout (closed categories start folded)."""
    from tensorboard.compat.proto.summary_pb2 import Summary, SummaryMetadata
    from tensorboard.compat.proto.tensor_pb2 import TensorProto
    from tensorboard.compat.proto.tensor_shape_pb2 import TensorShapeProto
    from tensorboard.plugins.custom_scalar import layout_pb2

    categories = [
        layout_pb2.Category(
            title=title,
            closed=closed,
            chart=[
                layout_pb2.Chart(title=name, multiline=layout_pb2.MultilineChartContent(tag=patterns))
                for name, patterns in charts.items()
            ],
        )
        for title, closed, charts in lay
        if charts
    ]
    content = layout_pb2.Layout(category=categories).SerializeToString()
    metadata = SummaryMetadata(plugin_data=SummaryMetadata.PluginData(plugin_name="custom_scalars"))
    tensor = TensorProto(dtype="DT_STRING", string_val=[content], tensor_shape=TensorShapeProto())
    return Summary(value=[Summary.Value(tag="custom_scalars__config__", tensor=tensor, metadata=metadata)])


class EpochTensorBoardLogger(TensorBoardLogger):
    """Lightning's TensorBoard logger with the epoch (1-based: 1 = after the first epoch, as the
    epoch line counts) as TensorBoard's step, so every chart's x axis reads epochs: every scalar
    binexp logs is per epoch (train metrics ``on_epoch``, validation, the LR monitor at
    ``logging_interval: epoch``, the layer diagnostics). Lightning's own ``epoch`` scalar stays
    (``binexp plot`` maps steps to epochs with it). Remembers the tags it wrote (the layout has
    charts for those only) and adds ``layer_mean/<stat>`` for the statistics of
    :func:`compared`."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.trainer: L.Trainer | None = None  # set by TensorBoardViews.setup
        self.tags: dict[str, None] = {}

    def epoch_step(self) -> int | None:
        return None if self.trainer is None else int(self.trainer.current_epoch) + 1

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        metrics = dict(metrics)
        if "epoch" in metrics:
            step = int(metrics["epoch"]) + 1
        elif (epoch := self.epoch_step()) is not None:  # the LR monitor at epoch start, the diagnostics
            step = epoch
        layers: dict[str, list[float]] = {}
        for tag, value in metrics.items():
            stat, sep, _ = tag.partition("/")
            if sep and compared(stat):
                layers.setdefault(stat, []).append(float(value))
        for stat, values in layers.items():
            metrics[f"layer_mean/{stat}"] = sum(values) / len(values)
        self.tags.update(dict.fromkeys(t for t in metrics if t != "epoch"))
        super().log_metrics({tb_tag(tag): value for tag, value in metrics.items()}, step)

    @rank_zero_only
    def save(self) -> None:
        """Flush the events; no ``hparams.yaml`` beside them (the run's config is in ``.hydra/``)."""
        if self._experiment is not None:
            self._experiment.flush()


def hparams_of(static: dict) -> dict:
    """The hyperparameters of one run: what it chose per group, its seed and epochs, and every
    override (so the keys a sweep varies are columns)."""
    choices = static.get("choices") or {}
    hp = {
        group: "none" if choices.get(group) is None else str(choices.get(group))
        for group in ("experiment", "quantizer", "model", "data", "schedule")
    }
    hp["seed"] = "null" if static.get("seed") is None else str(static.get("seed"))
    hp["trainer.max_epochs"] = str(static.get("max_epochs"))  # an override of it replaces it: one column
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


class TensorBoardViews(Callback):
    """Writes the HParams session of this run (rank 0, fit start) and, at the end of the first
    training epoch of the process, the custom-scalars layout of the tags logged so far (with the
    training and validation curves, which Lightning writes after this hook)."""

    def __init__(self, static: dict) -> None:
        self.static = static
        self._layout_written = False

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        for logger in trainer.loggers:
            if isinstance(logger, EpochTensorBoardLogger):
                logger.trainer = trainer

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        bits = self.static.get("bits_per_weight")
        if bits is not None:  # a metric of the HParams table, and a scalar every logger gets
            for logger in trainer.loggers:
                logger.log_metrics({"model/bits_per_weight": float(bits)}, step=0)
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                write_hparams(logger.experiment, self.static)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._layout_written or not trainer.is_global_zero:
            return
        self._layout_written = True
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                tags = list(getattr(logger, "tags", {}))
                tags += ["train/loss", "train/acc1", "val/loss", "val/acc1", "val/acc5", "val/acc1_best"]
                logger.experiment._get_file_writer().add_summary(layout_summary(layout(tags)))
                logger.experiment.flush()


def swept_hparams() -> set[str]:
    """The keys ``binexp train -m`` sweeps (the HParams columns that differ between runs)."""
    import os

    from binexp.runs import SWEPT_ENV

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

    exp, ssi, sei = hparams(hparams_of(static), {tb_tag(m): 0.0 for m in HPARAM_METRICS})
    mark_differs(exp, swept_hparams())
    file_writer = writer._get_file_writer()
    for summary in (exp, ssi, sei):
        file_writer.add_summary(summary)
    writer.flush()


__all__ = [
    "HPARAM_METRICS",
    "METHOD_WIDE",
    "EpochTensorBoardLogger",
    "TensorBoardViews",
    "hparams_of",
    "layout",
    "layout_summary",
    "write_hparams",
]
