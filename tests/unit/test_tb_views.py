"""The custom-scalars layout, the epoch axis and the HParams entry of a run, as data."""

import re

import pytest
from omegaconf import OmegaConf

from binexp.lit.tb_views import FIRST_CATEGORY, EpochTensorBoardLogger, hparams_of, layout
from binexp.tb_tags import logged_tag, tb_tag

LAYERS = ["layer1.0.conv1", "layer1.0.conv2", "layer3.2.conv2"]
RBNN_TAGS = [
    *(
        f"{stat}/{layer}"
        for stat in ("angular_bias", "quant_error", "rbnn_alpha_mean", "act_angular_bias")
        for layer in LAYERS
    ),
    "method/rbnn_t",
    "lr-SGD",
    "train/loss",
    "train/acc1",
    "val/loss",
    "val/acc1",
    "val/acc5",
    "val/acc1_best",
    "model/bits_per_weight",
]


def test_first_screen_compares_runs_on_accuracy_alpha_and_angular_bias():
    lay = layout(RBNN_TAGS)
    title, closed, charts = lay[0]
    assert title == FIRST_CATEGORY and not closed
    assert charts == {
        "val top-1 (%)": ["^compare/accuracy_val_top1$"],
        "angular_bias (mean over layers)": ["^compare/angular_bias$"],
        "act_angular_bias (mean over layers)": ["^compare/act_angular_bias$"],
        "rbnn_alpha_mean (mean over layers)": ["^compare/rbnn_alpha_mean$"],
    }
    assert list(charts)[0] == "val top-1 (%)"
    assert lay[1][0] == "training" and not lay[1][1]
    training = lay[1][2]
    assert training["train loss"] == ["^curves/train_loss$"] and training["val loss"] == ["^curves/val_loss$"]  # apart
    assert training["learning rate"] == ["^curves/lr\\-"]


def test_one_chart_per_layer_titled_by_the_layer():
    cats = {title: (closed, charts) for title, closed, charts in layout(RBNN_TAGS)}
    closed, charts = cats["angular_bias, per layer (binarized weights, every layer)"]
    assert not closed and list(charts) == [f"angular_bias · {layer}" for layer in LAYERS]
    assert charts["angular_bias · layer1.0.conv1"] == [r"^per_layer\.angular_bias/layer1\.0\.conv1$"]
    assert not cats["rbnn_alpha_mean, per layer (RBNN, every layer)"][0]  # the first screen's statistics: open
    assert cats["quant_error, per layer (binarized weights, every layer)"][0]  # the rest: folded
    # exact patterns: a layer's chart never takes another layer or statistic whose name contains it
    assert not re.match(charts["angular_bias · layer1.0.conv1"][0], "per_layer.angular_bias/layer1x0.conv1")
    assert not re.match(charts["angular_bias · layer1.0.conv1"][0], "per_layer.act_angular_bias/layer1.0.conv1")
    # the α and angular-bias categories come before the rest, in the first screen's order
    order = [t for t in cats if t.endswith(")") and ", per layer" in t]
    assert order[:3] == [
        "angular_bias, per layer (binarized weights, every layer)",
        "act_angular_bias, per layer (binarized weights, every layer)",
        "rbnn_alpha_mean, per layer (RBNN, every layer)",
    ]


def test_no_chart_without_a_logged_tag():
    lay = layout(RBNN_TAGS)
    every = [p for _, _, charts in lay for patterns in charts.values() for p in patterns]
    logged = [*RBNN_TAGS, "layer_mean/rbnn_alpha_mean", "layer_mean/angular_bias", "layer_mean/act_angular_bias"]
    logged = [tb_tag(t) for t in logged]
    assert all(any(re.match(p, t) for t in logged) for p in every)
    cats = {title: charts for title, _, charts in lay}
    assert cats["method-wide"] == {"method/rbnn_t": ["^method/rbnn_t$"]}  # no rbnn_k, no one-dot model chart
    # an fp run (no binarized layer): only accuracy, training curves
    fp = layout(["val/acc1", "train/loss", "val/loss"])
    assert [t for t, _, _ in fp] == [FIRST_CATEGORY, "training"]
    assert fp[0][2] == {"val top-1 (%)": ["^compare/accuracy_val_top1$"]}


class Epoch:
    current_epoch = 2  # the third epoch (0-based in Lightning)


def test_the_step_written_is_the_epoch_and_layer_means_are_added(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logger = EpochTensorBoardLogger(save_dir=str(tmp_path), name="tb", version="run", default_hp_metric=False)
    logger.log_metrics({"model/bits_per_weight": 1.0}, step=0)  # before training: step 0
    logger.log_metrics({"val/acc1": 50.0, "epoch": 1}, step=123)  # Lightning's: its epoch field
    logger.trainer = Epoch()  # type: ignore[assignment]
    logger.log_metrics({"angular_bias/a": 0.7, "angular_bias/b": 0.9, "quant_error/a": 0.3}, step=456)
    logger.experiment.flush()
    events = EventAccumulator(logger.log_dir, size_guidance={"scalars": 0})
    events.Reload()
    steps = {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}
    assert steps["model/bits_per_weight"] == [(0, 1.0)]
    assert steps["compare/accuracy_val_top1"] == [(2, 50.0)] and steps["epoch"] == [(2, 1.0)]
    assert steps["per_layer.angular_bias/a"] == [(3, pytest.approx(0.7))]
    assert steps["compare/angular_bias"] == [(3, pytest.approx(0.8))]
    assert "compare/quant_error" not in steps  # means only for the first screen's statistics
    assert "val/acc1" in logger.tags and "epoch" not in logger.tags


def test_hparams_are_choices_and_overrides_without_paths_or_display_flags():
    static = {
        "choices": {
            "quantizer": "rbnn",
            "model": "resnet20",
            "data": "cifar10",
            "schedule": "rbnn_cifar",
            "experiment": None,
        },
        "seed": 3,
        "max_epochs": 1000,
        "overrides": [
            "quantizer=rbnn",
            "quantizer.rounds=1",
            "seed=3",
            "data.root=/datasets/cifar10",
            "trainer.enable_progress_bar=false",
            "hydra.sweep.dir=x",
            "+quantizer.extra=2",
            "verbose=true",
        ],
    }
    assert hparams_of(static) == {
        "experiment": "none",
        "quantizer": "rbnn",
        "model": "resnet20",
        "data": "cifar10",
        "schedule": "rbnn_cifar",
        "seed": "3",
        "trainer.max_epochs": "1000",
        "quantizer.rounds": "1",
        "quantizer.extra": "2",
    }
    # an override of the epochs replaces the column: no max_epochs beside trainer.max_epochs
    hp = hparams_of({**static, "max_epochs": 3, "overrides": ["trainer.max_epochs=3"]})
    assert hp["trainer.max_epochs"] == "3" and "max_epochs" not in hp


def tb_sort_key(tag: str) -> list:
    """TensorBoard's tag order (Time Series and Scalars): digits and ``/`` before anything else,
    then character codes (numbers compare as numbers; none occur in these group names)."""
    return [(0, c) if c == "/" or c.isdigit() else (1, c) for c in tag]


def test_tensorboard_opens_on_the_runs_compared_then_the_curves_and_per_layer_last():
    """Time Series and Scalars group charts by the tag's first part, sorted, and Time Series opens
    the first two groups: those must be the comparison (val top-1, angular bias and α as layer
    means) and the training curves; the per-layer statistics come after, one group each."""
    logged = [*RBNN_TAGS, "epoch", "train/angle_penalty", "layer_mean/angular_bias", "layer_mean/rbnn_alpha_mean"]
    groups = list(dict.fromkeys(tb_tag(t).split("/")[0] for t in sorted(logged, key=lambda t: tb_sort_key(tb_tag(t)))))
    assert groups == [
        "compare",
        "curves",
        "epoch",
        "method",
        "model",
        "per_layer.act_angular_bias",
        "per_layer.angular_bias",
        "per_layer.quant_error",
        "per_layer.rbnn_alpha_mean",
    ]
    first = sorted((tb_tag(t) for t in logged if tb_tag(t).startswith("compare/")), key=tb_sort_key)
    assert first == ["compare/accuracy_val_top1", "compare/angular_bias", "compare/rbnn_alpha_mean"]
    assert tb_tag("train/loss") == "curves/train_loss" and tb_tag("lr-SGD") == "curves/lr-SGD"
    assert tb_tag("angular_bias/layer1.0.conv1") == "per_layer.angular_bias/layer1.0.conv1"  # the chart: the layer
    assert all(logged_tag(tb_tag(t)) == t for t in logged)  # ``binexp plot`` reads the logged names back
    assert logged_tag("val/acc1") == "val/acc1"  # runs written before these names


def test_the_run_name_is_the_run_directory_once(tmp_path):
    """Events lie in the run directory itself: with ``--logdir`` at a sweep, TensorBoard names the
    run by its folder (``0_quantizer=xnor``), not ``0_quantizer=xnor/tensorboard/0_quantizer=xnor``."""
    from tensorboard.backend.event_processing.plugin_event_multiplexer import EventMultiplexer

    from binexp.run import build_loggers

    run = tmp_path / "0_quantizer=xnor"
    run.mkdir()
    (tb,) = build_loggers(OmegaConf.create({"logger": {"tensorboard": True}}), run)
    tb.log_metrics({"val/acc1": 1.0}, step=0)
    tb.save()
    mux = EventMultiplexer().AddRunsFromDirectory(str(tmp_path))
    assert list(mux.Runs()) == ["0_quantizer=xnor"]
    assert [p.name for p in run.iterdir() if not p.name.startswith("events.out.tfevents.")] == []  # no hparams.yaml
