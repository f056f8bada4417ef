"""BiBench's stability track: the eight hyper-parameter settings as a sweep preset, and
``binexp report --by quantizer --columns worst`` giving mean, std and worst case per method."""

from __future__ import annotations

import statistics
import sys

import lightning.pytorch  # noqa: F401 - imported outside capsys: its log handler keeps a live stream
import pytest

from binexp.cli import main
from tests.conftest import QUICK
from tests.integration.test_report_checks import csv_rows, report, write_run

# BiBench configs/_base_/schedules/<setting>_200e.py (github.com/htqin/BiBench, arXiv:2301.11233):
# (optimizer, lr, momentum, weight decay, LR policy, milestones)
BIBENCH = {
    "sgd_1e-1_cosinelr": ("sgd", 0.1, 0.9, 1e-4, "cosine", []),
    "sgd_1e-2_cosinelr": ("sgd", 0.01, 0.9, 1e-4, "cosine", []),
    "sgd_1e-1_steplr": ("sgd", 0.1, 0.0, 1e-4, "multistep", [100, 150]),
    "sgd_1e-2_steplr": ("sgd", 0.01, 0.0, 1e-4, "multistep", [100, 150]),
    "adam_1e-3_cosinelr": ("adam", 1e-3, None, 0.0, "cosine", []),
    "adam_1e-4_cosinelr": ("adam", 1e-4, None, 0.0, "cosine", []),
    "adam_1e-3_steplr": ("adam", 1e-3, None, 0.0, "multistep", [100, 150]),
    "adam_1e-4_steplr": ("adam", 1e-4, None, 0.0, "multistep", [100, 150]),
}


def test_the_preset_sweeps_bibench_eight_settings_times_three_seeds():
    from binexp.config import validate
    from binexp.preflight import compose

    cfg = compose(["experiment=bibench_stability"])
    params = cfg.hydra.sweeper.params
    assert params.seed == "0,1,2"
    schedules = params.schedule.split(",")
    assert sorted(schedules) == sorted(f"bibench_{s}" for s in BIBENCH)
    assert cfg.model.name == "resnet18_cifar" and cfg.data.name == "cifar10" and cfg.data.batch_size == 128
    for name, (opt, lr, momentum, wd, policy, milestones) in BIBENCH.items():
        s = validate(compose(["experiment=bibench_stability", f"schedule=bibench_{name}"])).schedule
        assert (s.optimizer, s.lr, s.weight_decay, s.lr_schedule, list(s.milestones)) == (
            opt,
            lr,
            wd,
            policy,
            milestones,
        ), name
        assert s.epochs == 200 and s.warmup_epochs == 0 and s.gamma == 0.1 and list(s.betas) == [0.9, 0.999]
        if momentum is not None:
            assert s.momentum == momentum and not s.nesterov


def test_report_by_method_gives_mean_std_and_worst_case(tmp_path, capsys):
    accs = {"xnor": [60.0, 70.0, 80.0, 10.0], "bireal": [75.0, 76.0, 77.0, 74.0]}  # one collapse for xnor
    for q, values in accs.items():
        for i, acc in enumerate(values):
            schedule = f"bibench_{list(BIBENCH)[i]}"
            write_run(tmp_path, f"{q}{i}", [f"schedule={schedule}", f"quantizer={q}", "seed=0"], best_val_acc1=acc)
    code, out, err = report(capsys, tmp_path, "--by", "quantizer", "--columns", "worst")
    assert code == 0, err
    assert "| quantizer | bits/weight | best_val_acc1 (%) | worst (%) | n | epochs | status |" in out
    assert f"| xnor | 1.00 | 55.00 ± {statistics.stdev(accs['xnor']):.2f} | 10.00 | 4 |" in out
    code, out, _ = report(capsys, tmp_path, "--by", "quantizer", "--columns", "worst", "--format", "csv")
    rows = {r["quantizer"]: r for r in csv_rows(out)}
    assert float(rows["bireal"]["worst"]) == 74.0 and float(rows["bireal"]["best_val_acc1_mean"]) == 75.5
    assert float(rows["bireal"]["best_val_acc1_std"]) == round(statistics.stdev(accs["bireal"]), 2)
    # a metric where lower is better: its worst case is the highest (here the training time)
    for i, t in enumerate((30.0, 50.0, 40.0)):
        write_run(tmp_path, f"t{i}", [f"schedule=bibench_{list(BIBENCH)[i]}", "quantizer=dorefa"], wall_time_s=t)
    code, out, _ = report(capsys, tmp_path, "--by", "quantizer", "--metric", "wall_time_s", "--columns", "worst")
    assert "| dorefa | 1.00 | 40.00 ± 10.00 | 50.00 | 3 |" in out, out
    # without --columns worst the table is as before
    code, out, _ = report(capsys, tmp_path, "--by", "quantizer")
    assert "worst" not in out


@pytest.mark.slow
def test_a_tiny_stability_sweep_end_to_end(tmp_path, monkeypatch, capsys):
    """Two methods x the eight settings at one seed, smoke scale, in-process; then the one command."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BINEXP_VERB", "")
    monkeypatch.setattr(sys, "argv", ["binexp"])
    sweep = tmp_path / "sweep"
    args = ["train", "-m", "experiment=bibench_stability", "quantizer=fp,xnor", "seed=0", "debug=smoke"]
    args += ["model.width=0.125", "data.train_size=64", "data.val_size=32", "data.batch_size=32"]
    args += ["callbacks.layer_diagnostics=null", *QUICK, f"hydra.sweep.dir={sweep}"]
    try:
        code = main(args)
    except SystemExit as e:
        code = e.code
    assert code in (0, None)
    jobs = sorted(p.name for p in sweep.iterdir() if p.is_dir())
    assert len(jobs) == 16 and all("schedule=bibench_" in j for j in jobs), jobs
    capsys.readouterr()
    code, out, err = report(capsys, sweep, "--by", "quantizer", "--columns", "worst", "--format", "csv")
    assert code == 0, err
    rows = {r["quantizer"]: r for r in csv_rows(out)}
    assert set(rows) == {"fp", "xnor"} and all(r["n"] == "8" for r in rows.values())
    for r in rows.values():
        assert float(r["worst"]) <= float(r["best_val_acc1_mean"]) and float(r["best_val_acc1_std"]) >= 0
