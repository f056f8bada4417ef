"""What a researcher sees (issue 12): one line per epoch and no noise on the console and in
train.log, binexp's compact summary, the TensorBoard custom-scalars layout and HParams read back
from a 2-job sweep's event files, the same diagnostics in the CSV log, short sweep job names."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest

from binexp.lit.tb_views import FIRST_CATEGORY
from tests.conftest import read_metrics, run_cli
from tests.support.tb import RunEvents

EPOCHS = 2
# the epoch line: epoch / max, train loss and top-1, val top-1 (best), LR, epoch time, images/s, ETA
EPOCH_LINE = re.compile(
    r"epoch (\d+)/(\d+)  train loss (\d+\.\d{4}) top-1 (\d+\.\d\d)%  val top-1 (\d+\.\d\d)% "
    r"\(best (\d+\.\d\d)%\)  lr (\S+)  (\d+\.\d) s  ([\d,]+) img/s  ETA (\d+:\d\d:\d\d)$"
)
NOISE = [
    "GPU available",
    "TPU available",
    "litlogger",
    "Tip:",
    "Total params",
    "Total estimated model params size",
    "| Name",
    "Total Flops",
    "LeafSpec",
    "log_every_n_steps",
    "logging interval",
    "`Trainer.fit` stopped",
    "\r",
    "Sanity Checking",
    "Epoch 0:",
    "it/s",
    "layer layer1.0.conv1:",
]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> tuple[Path, object]:
    """fp and xnor, 2 epochs of 2 batches each, TensorBoard + CSV loggers; the progress bar and
    the sanity check left on (the defaults), but the output is not a terminal."""
    cwd = tmp_path_factory.mktemp("seeing")
    out = cwd / "sweep"
    r = run_cli(
        [
            "train",
            "-m",
            "quantizer=fp,xnor",
            "data=synthetic",
            "data.batch_size=32",
            "data.eval_batch_size=64",
            "logger=csv",
            f"trainer.max_epochs={EPOCHS}",
            "trainer.limit_train_batches=2",
            "trainer.limit_val_batches=1",
            "trainer.num_sanity_val_steps=1",
            f"hydra.sweep.dir={out}",
        ],
        cwd,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    return out, r


def jobs(out: Path) -> list[Path]:
    return sorted(p for p in out.iterdir() if p.is_dir())


def epoch_lines(text: str) -> list[re.Match]:
    return [m for m in (EPOCH_LINE.search(line) for line in text.splitlines()) if m]


def test_one_line_per_epoch_on_the_console_and_in_train_log(sweep):
    out, r = sweep
    console = r.stdout + r.stderr
    lines = epoch_lines(console)
    assert [(int(m[1]), int(m[2])) for m in lines] == [(1, EPOCHS), (2, EPOCHS)] * 2  # two jobs
    assert sum("epoch " in line and "/2  train loss" in line for line in console.splitlines()) == 4
    for job in jobs(out):
        log = (job / "train.log").read_text()
        mine = epoch_lines(log)
        assert [int(m[1]) for m in mine] == [1, 2]
        m = read_metrics(job)
        last = mine[-1]
        assert float(last[5]) == pytest.approx(m["val_acc1"], abs=0.006)  # val top-1 of the last epoch
        assert float(last[6]) == pytest.approx(m["best_val_acc1"], abs=0.006)
        assert float(last[3]) == pytest.approx(m["train_loss"], abs=6e-5)
        assert float(last[4]) == pytest.approx(m["train_acc1"], abs=0.006)
        assert float(mine[0][6]) <= float(last[6])  # best so far never falls
        assert last[10] == "0:00:00" and mine[0][10] != ""  # nothing left after the last epoch
        assert float(last[9].replace(",", "")) > 0
        events = RunEvents(job)  # the LR each epoch trained with (rbnn_cifar's warm-up: it changes every epoch)
        assert [float(m[7]) for m in mine] == [float(f"{e.value:.4g}") for e in events.Scalars("lr-SGD")]
        assert "completed after 2 epochs" in log


def test_no_noise_and_the_compact_summary_instead(sweep):
    out, r = sweep
    console = r.stdout + r.stderr
    for job in jobs(out):
        log = (job / "train.log").read_text()
        for text in (console, log):
            assert not [n for n in NOISE if n in text], [n for n in NOISE if n in text]
        assert "Warning" not in console, console[-2000:]
    xnor = (jobs(out)[1] / "train.log").read_text()
    # ResNet-20 xnor: 267,264 binarized weights + 3,258 32-bit values (tests/integration/test_train_cli.py)
    assert "270,522 params (267,264 at 1 bit, 3,258 at 32 bits); 18 binarized layers, 1.0 bits/weight" in xnor
    # 1-bit weights + 32-bit values: (267,264 + 32 * 3,258) / 8 / 1024 KiB; MACs as binexp summary counts them
    assert (
        "deployed size 45.35 KiB (float-32 1,056.73 KiB, 23.3x); MACs 40.11 M binary + 443.01 k full precision "
        "(98.9 % binary)"
    ) in xnor
    assert "270,522 params" in console


def test_sweep_job_directories_name_only_the_swept_values(sweep):
    out, _ = sweep
    assert [p.name for p in jobs(out)] == ["0_quantizer=fp", "1_quantizer=xnor"]


def test_custom_scalars_layout_and_hparams_read_back(sweep):
    from tensorboard.plugins.custom_scalar import layout_pb2
    from tensorboard.plugins.hparams import metadata as hp_metadata

    out, _ = sweep
    sessions = {}
    for job in jobs(out):
        events = RunEvents(job)  # in the run directory: TensorBoard names the run by it, once
        scalars = set(events.acc.Tags()["scalars"])  # TensorBoard's names, which the layout matches
        layout = layout_pb2.Layout()
        layout.ParseFromString(events.Tensors("custom_scalars__config__")[0].tensor_proto.string_val[0])
        # the first screen: runs compared on val top-1, then α and angular bias (means over layers)
        first = layout.category[0]
        assert first.title == FIRST_CATEGORY and not first.closed
        assert [c.title for c in first.chart][0] == "val top-1 (%)" and list(first.chart[0].multiline.tag) == [
            "^compare/accuracy_val_top1$"
        ]
        charts = {c.title: list(c.multiline.tag) for cat in layout.category for c in cat.chart}
        for title, patterns in charts.items():  # no empty chart: every pattern matches a logged tag
            assert all(any(re.match(p, t) for t in scalars) for p in patterns), title
        assert charts["train loss"] == ["^curves/train_loss$"] and charts["val loss"] == ["^curves/val_loss$"]
        # the x axis reads epochs (1 = after the first), for Lightning's metrics and the diagnostics
        assert [e.step for e in events.Scalars("val/acc1")] == list(range(1, EPOCHS + 1))
        assert [e.step for e in events.Scalars("lr-SGD")] == list(range(1, EPOCHS + 1))
        if "xnor" in job.name:  # named layers: one chart per layer, titled by it
            assert [c.title for c in first.chart] == [
                "val top-1 (%)",
                "angular_bias (mean over layers)",
                "act_angular_bias (mean over layers)",
            ]
            per_layer = {cat.title: cat for cat in layout.category}[
                "angular_bias, per layer (binarized weights, every layer)"
            ]
            assert not per_layer.closed and len(per_layer.chart) == 18
            assert per_layer.chart[0].title == "angular_bias · layer1.0.conv1"
            assert list(per_layer.chart[0].multiline.tag) == ["^per_layer\\.angular_bias/layer1\\.0\\.conv1$"]
            assert [e.step for e in events.Scalars("angular_bias/layer1.0.conv1")] == list(range(1, EPOCHS + 1))
            assert [e.step for e in events.Scalars("act_angular_bias/layer1.0.conv1")] == list(range(1, EPOCHS + 1))
            layers = [t for t in events.Tags()["scalars"] if t.startswith("angular_bias/")]
            mean = sum(events.Scalars(t)[-1].value for t in layers) / len(layers)
            assert events.Scalars("layer_mean/angular_bias")[-1].value == pytest.approx(mean, rel=1e-5)
        content = events.PluginTagToContent("hparams")
        exp = hp_metadata.parse_experiment_plugin_data(content[hp_metadata.EXPERIMENT_TAG])
        assert [m.name.tag for m in exp.metric_infos] == [
            "curves/val_top1_best",
            "compare/accuracy_val_top1",
            "model/bits_per_weight",
        ]
        start = hp_metadata.parse_session_start_info_plugin_data(content[hp_metadata.SESSION_START_INFO_TAG])
        hp = {k: v.string_value for k, v in start.hparams.items()}
        assert {h.name for h in exp.hparam_infos} == set(hp) and "max_epochs" not in hp  # trainer.max_epochs only
        assert [h.name for h in exp.hparam_infos if h.differs] == ["quantizer"]  # the swept key: a default column
        sessions[job.name] = hp
        bits = events.Scalars("model/bits_per_weight")[0].value
        assert bits == read_metrics(job)["bits_per_weight"]
        best = events.Scalars("val/acc1_best")[-1].value
        assert best == pytest.approx(read_metrics(job)["best_val_acc1"], abs=1e-4)
    # the swept key is a column, the same columns in every job; paths and display flags are not
    assert sessions["0_quantizer=fp"]["quantizer"] == "fp" and sessions["1_quantizer=xnor"]["quantizer"] == "xnor"
    assert sessions["0_quantizer=fp"]["experiment"] == "none" and sessions["0_quantizer=fp"]["data"] == "synthetic"
    assert sessions["0_quantizer=fp"].keys() == sessions["1_quantizer=xnor"].keys()
    assert (
        sessions["0_quantizer=fp"]["trainer.max_epochs"] == "2" and "hydra.sweep.dir" not in sessions["0_quantizer=fp"]
    )


def test_layer_diagnostics_reach_the_csv_logger_too(sweep):
    out, _ = sweep
    job = jobs(out)[1]
    rows = list(csv.DictReader((job / "csv" / "metrics.csv").open()))
    columns = set(rows[0])
    assert len([c for c in columns if c.startswith("angular_bias/")]) == 18
    assert len([c for c in columns if c.startswith("flip_rate/")]) == 18
    values = [float(row["angular_bias/layer1.0.conv1"]) for row in rows if row.get("angular_bias/layer1.0.conv1")]
    assert len(values) == EPOCHS and all(20 < v < 50 for v in values)  # the angle in degrees, 37 for Gaussian w
    events = RunEvents(job)
    tb = [e.value for e in events.Scalars("angular_bias/layer1.0.conv1")]
    assert tb == pytest.approx(values, rel=1e-6)  # the same numbers in both loggers


@pytest.mark.slow
def test_verbose_brings_lightning_back(tmp_path):
    r = run_cli(
        [
            "train",
            "-v",
            "data=synthetic",
            "quantizer=flexor",
            "trainer.max_epochs=1",
            "trainer.limit_train_batches=1",
            "trainer.limit_val_batches=1",
            "trainer.num_sanity_val_steps=0",
        ],
        tmp_path,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    console = r.stdout + r.stderr
    for line in ("GPU available", "Total params", "layer layer1.0.conv1: {'n_in'"):
        assert line in console, line
    assert len(epoch_lines(console)) == 1
    run = next((tmp_path / "outputs" / "runs").iterdir())
    assert read_metrics(run)["overrides"][-1] == "verbose=true"
