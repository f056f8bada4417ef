"""FleXOR through the installed CLI: the N_in sweep's bits, every preset for one step, the
export round trip on a run's checkpoint, and (slow) learning on synthetic data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from binexp.commands.list import config_options
from binexp.quant.flexor import FlexorConv2d
from binexp.quant.flexor_export import module_from_checkpoint, verify_roundtrip
from binexp.quant.layers import quantized_layers
from tests.conftest import HANG_LIMIT, QUICK, read_metrics, run_cli
from tests.support.tb import RunEvents

CONF = Path(__file__).resolve().parents[2] / "conf"
PRESETS = [o for o in config_options("experiment") if o.startswith("flexor_")]
ONE_STEP = ["data=synthetic", "trainer.max_epochs=1", "trainer.limit_train_batches=1", "trainer.limit_val_batches=1"]
SWEEP_BITS = {8: 0.4003, 12: 0.6005, 16: 0.8006, 20: 1.0008}  # ResNet-20, N_out = 20, ceil included


def job_dirs(sweep: Path) -> list[Path]:
    return sorted((p for p in sweep.iterdir() if p.is_dir()), key=lambda p: int(p.name.split("_", 1)[0]))


@pytest.fixture(scope="module")
def bits_sweep(tmp_path_factory) -> Path:
    cwd = tmp_path_factory.mktemp("flexor_sweep")
    sweep = cwd / "sweep"
    r = run_cli(
        [
            "train",
            "-m",
            "quantizer=flexor",
            "quantizer.n_in=8,12,16,20",
            "quantizer.n_out=20",
            "data=synthetic",
            "trainer.max_epochs=1",
            "trainer.limit_train_batches=2",
            "trainer.limit_val_batches=1",
            f"hydra.sweep.dir={sweep}",
            *QUICK,
        ],
        cwd,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    return sweep


def test_n_in_sweep_reports_fractional_bits(bits_sweep):
    runs = job_dirs(bits_sweep)
    assert len(runs) == 4
    for run, (n_in, bits) in zip(runs, SWEEP_BITS.items()):
        assert f"quantizer.n_in={n_in}" in run.name
        m = read_metrics(run)
        assert m["status"] == "completed" and m["quantizer"] == "flexor" and m["global_step"] == 2
        assert abs(m["bits_per_weight"] - n_in / 20) < 1e-3 and m["bits_per_weight"] == bits
        assert m["params"]["binarized_weights"] == 267_264
        assert (
            m["params"]["binarized_weight_bits"] == round(bits * 267_264)
            or abs(m["params"]["binarized_weight_bits"] / 267_264 - bits) < 1e-4
        )
        assert m["bits_per_weight_with_scales"] == pytest.approx(bits + 32 * 672 / 267_264, abs=2e-4)
        rep = m["method_report"]
        assert rep["flexor_layers"] == 18
        assert rep["flexor_effective_bits_per_weight"] < rep["flexor_bits_per_weight"]  # N_tap = 2: rank <= N_in - 1
        layer = m["layer_reports"]["layer3.2.conv2"]
        assert layer["n_in"] == n_in and layer["n_slices"] == 36864 // 20 + 1 and layer["xor_rank"][0] <= n_in - 1


def test_sweep_logs_flexor_diagnostics_to_tensorboard_and_the_run_log(bits_sweep):
    run = job_dirs(bits_sweep)[0]
    events = RunEvents(run)
    scalars, hists = set(events.Tags()["scalars"]), set(events.Tags()["histograms"])
    for tag in (
        "flexor_bits_per_weight",
        "flexor_effective_bits",
        "flexor_unused_inputs",
        "flexor_s_tanh",
        "flexor_clipped_share",
        "angular_bias",
    ):
        assert f"{tag}/layer1.0.conv1" in scalars, tag
    assert "encrypted_weight/layer3.2.conv2" in hists and "flexor_alpha/layer3.2.conv2" in hists
    assert events.Scalars("flexor_bits_per_weight/layer1.0.conv1")[0].value == pytest.approx(8 * 116 / 2304, abs=1e-6)
    assert events.Scalars("flexor_s_tanh/layer1.0.conv1")[0].value == 10.0
    # the model-level numbers of metrics.json's method_report, as model/<key>
    rep = read_metrics(run)["method_report"]
    for key in (
        "flexor_bits_per_weight",
        "flexor_bits_per_weight_with_alpha",
        "flexor_effective_bits_per_weight",
        "flexor_unused_input_share",
    ):
        assert events.Scalars(f"model/{key}")[0].value == pytest.approx(rep[key], abs=1e-6), key
    assert rep["flexor_bits_per_weight"] == pytest.approx(
        106_992 / 267_264, abs=1e-6
    )  # 8 bits per 20-weight slice, ceil per layer
    log = next(run.glob("*.log")).read_text()
    assert "layer layer1.0.conv1: {'n_in': 8, 'n_out': 20" in log and "'xor_rank'" in log


def test_export_round_trip_on_the_runs_checkpoint(bits_sweep, tmp_path):
    for run in job_dirs(bits_sweep)[::3]:  # 0.4 and 1.0 bit
        module = module_from_checkpoint(run / "checkpoints" / "last.ckpt")
        layers = [layer for _, layer in quantized_layers(module.net)]
        assert len(layers) == 18 and all(isinstance(layer, FlexorConv2d) for layer in layers)
        torch.manual_seed(0)  # the run's seed: a fresh model draws the same M (quantizer.seed=null)
        fresh = [
            layer
            for _, layer in quantized_layers(module_from_checkpoint(run / "checkpoints" / "last.ckpt", load=False).net)
        ]
        assert all(torch.equal(a.xor_matrix, b.xor_matrix) for a, b in zip(layers, fresh))
        res = verify_roundtrip(module.net, tmp_path / f"{run.name[:1]}.flexor")
        assert res["mismatched_bits"] == 0 and res["max_abs_diff"] == 0.0
        m = read_metrics(run)
        claimed = m["bits_per_weight"] * m["params"]["binarized_weights"] / 8 + 4 * 672
        assert abs(res["bytes"] - claimed) / claimed < 0.05, (res, claimed)


@pytest.fixture(scope="module")
def preset_sweep(tmp_path_factory) -> Path:
    cwd = tmp_path_factory.mktemp("flexor_presets")
    sweep = cwd / "sweep"
    # small batches, no checkpoints or loggers: launching is what is tested here
    fast = [
        "data.batch_size=8",
        "data.eval_batch_size=8",
        "data.train_size=64",
        "data.val_size=32",
        "logger=none",
        "callbacks.layer_diagnostics=null",
        "callbacks.model_checkpoint=null",
        "callbacks.lr_monitor=null",
    ]
    r = run_cli(
        [
            "train",
            "-m",
            f"experiment={','.join(PRESETS)}",
            *ONE_STEP,
            *fast,
            f"hydra.sweep.dir={sweep}",
            "hydra.sweep.subdir=${hydra.job.num}",
            *QUICK,
        ],
        cwd,
        timeout=HANG_LIMIT,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    return sweep


def test_there_are_presets_for_every_table():
    expected = {f"flexor_{m}_{b}" for m in ("resnet20", "resnet32") for b in ("b10", "b08", "b06", "b04")}
    expected |= {f"flexor_{m}_nout10_{b}" for m in ("resnet20", "resnet32") for b in ("b10", "b08", "b06", "b04")}
    expected |= {"flexor_resnet20_stage_19_16_7", "flexor_resnet32_q2", "flexor_resnet18_imagenet_b08"}
    expected |= {f"flexor_fig5_{s}" for s in ("flexor", "analog", "ste")}
    assert expected <= set(PRESETS)


@pytest.mark.parametrize("preset", PRESETS)
def test_preset_launches_for_one_step_on_synthetic_data(preset_sweep, preset):
    preset_cfg = yaml.safe_load((CONF / "experiment" / f"{preset}.yaml").read_text())
    [m] = [
        read_metrics(p)
        for p in preset_sweep.iterdir()
        if p.is_dir() and f"experiment={preset}" in read_metrics(p)["overrides"]
    ]
    assert m["status"] == "completed" and m["global_step"] == 1
    assert m["data"] == "synthetic"  # data=synthetic on the command line wins over the preset's data
    baseline = "no number published" in preset_cfg["meta"]["source"]  # a reviewer's extra: maybe another method
    assert m["quantizer"] == ("flexor" if not baseline else m["quantizer"]) and m["name"] == preset
    model = next(d["override /model"] for d in preset_cfg["defaults"] if "override /model" in d)
    assert m["model"] == model
    meta = m["meta"]
    assert meta["source"].startswith("FleXOR") and meta["table"] and meta["metric"]
    if meta["table"].startswith(("Table 1", "Table 2", "Table 3", "Table 6")):
        assert isinstance(meta["paper_value"], float)
    elif baseline:  # questions the paper never answered (its own method or a baseline beside it)
        assert meta["paper_value"] is None
        if m["quantizer"] != "flexor":
            return
    else:  # Table 5 and Fig. 5: the paper's numbers are not known
        assert "paper_value" not in meta and "unknown" in meta["note"]
    assert m["bits_per_weight"] == pytest.approx(meta["bits_per_weight"], abs=0.005)
    q = dict(preset_cfg["quantizer"])
    if "n_in_per_stage" in q:
        q["n_in"] = q.pop("n_in_per_stage")[0]
    first = m["layer_reports"][next(iter(m["layer_reports"]))]
    for key in ("n_in", "n_out", "q"):
        if key in q:
            assert first[key] == q[key], key


@pytest.mark.slow
def test_three_epochs_learn_far_above_chance_and_export(tmp_path):
    run = tmp_path / "run"
    # the command as written: the quantizer's defaults are N_in/N_out = 12/20, 0.6 bit
    r = run_cli(
        [
            "train",
            "quantizer=flexor",
            "data=synthetic",
            "model=resnet20",
            "trainer.max_epochs=3",
            f"hydra.run.dir={run}",
            *QUICK,
        ],
        tmp_path,
        timeout=HANG_LIMIT,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    m = read_metrics(run)
    assert m["bits_per_weight"] == 0.6005 and m["epochs"] == 3
    assert m["best_val_acc1"] > 60, m  # 10 classes: chance is 10 %
    module = module_from_checkpoint(run / "checkpoints" / "last.ckpt")
    r = run_cli(["export", str(run), str(tmp_path / "model.flexor")], tmp_path)  # as a user exports it
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(r.stdout)
    assert res["mismatched_bits"] == 0 and res["max_abs_diff"] == 0.0
    assert res["bytes"] == (tmp_path / "model.flexor").stat().st_size
    assert abs(res["bytes"] - res["claimed_bytes"]) / res["claimed_bytes"] < 0.05
    # trained: the encrypted weights moved away from the run's (seed 0) initialisation
    torch.manual_seed(0)
    fresh = module_from_checkpoint(run / "checkpoints" / "last.ckpt", load=False)
    pairs = list(zip(quantized_layers(module.net), quantized_layers(fresh.net)))
    flips = sum(int(((a.encrypted >= 0) != (b.encrypted >= 0)).sum()) for (_, a), (_, b) in pairs)
    total = sum(a.encrypted.numel() for (_, a), _ in pairs)
    assert flips > 0.05 * total, (flips, total)


def test_export_bad_input_is_one_line_and_overwrites_nothing(tmp_path):
    missing = run_cli(["export", str(tmp_path / "nope"), str(tmp_path / "out.flexor")], tmp_path)
    assert missing.returncode == 2 and missing.stderr.strip().splitlines() == [
        f"binexp: error: export: no checkpoint at {tmp_path / 'nope'}; "
        "fix: pass a FleXOR run directory or its .ckpt file"
    ]
    corrupt = tmp_path / "bad.ckpt"
    corrupt.write_bytes(b"PK\x03\x04 truncated")
    r = run_cli(["export", str(corrupt), str(tmp_path / "out.flexor")], tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "cannot rebuild a run from" in r.stderr
    (tmp_path / "out.flexor").write_bytes(b"keep")
    r = run_cli(["export", str(corrupt), str(tmp_path / "out.flexor")], tmp_path)
    assert r.returncode == 2 and "already exists" in r.stderr and (tmp_path / "out.flexor").read_bytes() == b"keep"
