"""A run's life as the run directory tells it: status of one run, a sweep re-run with other
overrides, concurrent starts, a run killed before its first checkpoint."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from binexp.cli import main as cli_main
from binexp.errors import BinexpError
from tests.conftest import QUICK, read_metrics, run_cli


def test_status_of_one_run_directory_is_its_line(tmp_path, capsys):
    run = tmp_path / "myrun"
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "overrides.yaml").write_text("- quantizer=xnor\n- data=synthetic\n")
    (run / "metrics.json").write_text(
        json.dumps({"status": "completed", "epochs": 2, "max_epochs": 2, "best_val_acc1": 40.5})
    )
    assert cli_main(["status", str(run)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2, lines
    assert lines[1].split() == ["myrun", "quantizer=xnor", "data=synthetic", "completed", "2/2", "40.50"]


# ------------------------------------------------------------------ a sweep re-run with other overrides
def _recorded_sweep(sweep: Path, task: list[str]) -> None:
    """A sweep directory as Hydra leaves it: multirun.yaml (its task overrides) and a finished job."""
    from omegaconf import OmegaConf

    sweep.mkdir(parents=True)
    OmegaConf.save({"hydra": {"overrides": {"task": task, "hydra": []}}}, sweep / "multirun.yaml")
    job = sweep / "0_seed=1"
    (job / ".hydra").mkdir(parents=True)
    (job / "metrics.json").write_text(json.dumps({"status": "completed", "epochs": 1, "max_epochs": 1}))


def test_a_sweep_rerun_with_other_overrides_refuses_naming_the_keys(tmp_path, capsys):
    sweep = tmp_path / "sweep"
    _recorded_sweep(sweep, ["data=synthetic", "seed=1,2"])
    before = sorted((p, p.read_bytes()) for p in sweep.rglob("*") if p.is_file())
    code = cli_main(
        ["train", "-m", "data=synthetic", "seed=1,2", "model=resnet32", "schedule.lr=0.5", f"hydra.sweep.dir={sweep}"]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert err[0] == (
        f"binexp: error: {sweep} holds a sweep with other overrides (model: (not set) -> resnet32, "
        f"schedule.lr: (not set) -> 0.5); re-running into it continues that sweep; fix: choose a new "
        f"hydra.sweep.dir, or repeat that sweep's overrides to continue it"
    )
    assert sorted((p, p.read_bytes()) for p in sweep.rglob("*") if p.is_file()) == before  # nothing written


def test_the_same_sweep_may_continue_in_its_directory(tmp_path):
    from binexp.sweep_resume import check_same_sweep

    sweep = tmp_path / "sweep"
    _recorded_sweep(sweep, ["data=synthetic", "seed=1,2"])
    check_same_sweep(
        sweep, ["seed=1,2", "+data=synthetic", "verbose=true", "hydra/launcher=local", f"hydra.sweep.dir={sweep}"]
    )
    with pytest.raises(BinexpError, match=r"\(seed: 1,2 -> 1,2,3\)"):
        check_same_sweep(sweep, ["data=synthetic", "seed=1,2,3"])


# ------------------------------------------------------------------------------ concurrent starts
SMOKE = [
    "data=synthetic",
    "data.train_size=32",
    "data.val_size=32",
    "data.batch_size=32",
    "data.eval_batch_size=32",
    "data.image_size=16",
    "model.width=0.25",
    "trainer.max_epochs=1",
    *QUICK,
]


def test_two_runs_started_in_the_same_second_get_their_own_directories(tmp_path, monkeypatch):
    """The default run directory is named to the second; the clock is frozen so both runs get the
    same name: the second gets ``<name>_2``, and the first run's files are its own."""
    import datetime as dt

    import hydra.core.utils

    class Frozen(dt.datetime):
        @classmethod
        def now(cls, tz=None):
            return cls(2026, 12, 1, 12, 0, 0)

    monkeypatch.setattr(hydra.core.utils, "datetime", Frozen)
    monkeypatch.chdir(tmp_path)
    assert cli_main(["train", "seed=1", *SMOKE]) == 0
    assert cli_main(["train", "seed=2", *SMOKE]) == 0
    runs = sorted(p for p in (tmp_path / "outputs" / "runs").iterdir())
    assert [p.name for p in runs] == [
        "2026-12-01_12-00-00_resnet20_xnor_synthetic",
        "2026-12-01_12-00-00_resnet20_xnor_synthetic_2",
    ]
    for run, seed in zip(runs, (1, 2)):
        assert f"seed={seed}" in (run / ".hydra" / "overrides.yaml").read_text()
        assert read_metrics(run)["seed"] == seed and read_metrics(run)["status"] == "completed"


def test_an_explicit_run_directory_being_started_is_one_line_and_untouched(tmp_path, monkeypatch, capsys):
    """The first process has claimed the directory (and is about to write its .hydra/ files): a
    second start into it stops with one line and writes nothing."""
    from binexp.preflight import preflight

    monkeypatch.chdir(tmp_path)
    run = tmp_path / "run"
    preflight(["seed=1", *SMOKE, f"hydra.run.dir={run}"], multirun=False)  # the first process's claim
    (run / ".hydra" / "overrides.yaml").write_text("- seed=1\n")  # what its Hydra then writes
    assert cli_main(["train", "seed=2", *SMOKE, f"hydra.run.dir={run}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"binexp: error: {run} "), err
    assert [p.name for p in run.rglob("*")] == [".hydra", "overrides.yaml"]
    assert (run / ".hydra" / "overrides.yaml").read_text() == "- seed=1\n"


# ------------------------------------------------------------------- killed before its first checkpoint
@pytest.mark.slow
def test_a_run_killed_before_its_first_checkpoint_records_no_epoch(tmp_path, capsys):
    """SIGKILL at the end of epoch 0, after its validation, before its checkpoints: metrics.json,
    status and resume all say that no epoch was kept."""
    run = tmp_path / "run"
    kill = ("tests.support.killpoint.KillAt", {"at": "epoch_end", "epoch": 0})
    r = run_cli(["train", *SMOKE, "trainer.max_epochs=2", f"hydra.run.dir={run}"], tmp_path, callbacks=[kill])
    assert r.returncode == -signal.SIGKILL, r.stderr[-3000:]
    assert not list((run / "checkpoints").glob("*.ckpt")) if (run / "checkpoints").exists() else True
    m = read_metrics(run)
    assert (m["status"], m["epochs"]) == ("running", 0)
    assert cli_main(["status", str(run)]) == 0
    assert capsys.readouterr().out.splitlines()[1].split()[-5:-3] == ["dead", "0/2"]
    r = run_cli(["train", f"resume={run}"], tmp_path)
    assert r.returncode == 2 and "the run stopped before its first checkpoint" in r.stderr, r.stderr[-2000:]
