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
    from binexp.runs.sweep import check_same_sweep

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


# ----------------------------------------------------------------------------------------- cluster
def _sbatch_flags(params: dict, folder: Path, monkeypatch) -> set[str]:
    """The #SBATCH lines submitit writes for these launcher parameters (hydra-submitit-launcher's mapping)."""
    import submitit
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
    from omegaconf import OmegaConf

    base = set(OmegaConf.structured(BaseQueueConf).keys())
    monkeypatch.setattr(submitit.SlurmExecutor, "affinity", classmethod(lambda cls: 1))
    executor = submitit.AutoExecutor(cluster="slurm", folder=str(folder))
    executor.update_parameters(
        **{
            k if k in base else f"slurm_{k}": v
            for k, v in params.items()
            if k not in ("_target_", "submitit_folder", "max_num_timeout")
        }
    )
    text = executor._executor._make_submission_file_text("python -m submitit.core._submit", "uid")
    return {line.split()[1] for line in text.splitlines() if line.startswith("#SBATCH")}


@pytest.mark.parametrize(
    "overrides, tasks",
    [
        (["hydra.launcher.gpus_per_node=0"], 1),  # a CPU job
        (["hydra.launcher.gpus_per_node=0", "trainer=ddp", "trainer.devices=4"], 4),  # CPU DDP: one task per process
        (["hydra.launcher.gpus_per_node=2", "trainer=ddp"], 2),  # one task per GPU
    ],
)
def test_a_cpu_slurm_job_gets_valid_tasks_per_node_without_an_override(tmp_path, monkeypatch, overrides, tasks):
    from omegaconf import OmegaConf

    from binexp.preflight import compose

    cfg = compose(["hydra/launcher=slurm", *overrides])
    OmegaConf.update(cfg, "hydra.job.name", "train", force_add=True)
    OmegaConf.update(cfg, "hydra.sweep.dir", str(tmp_path / "sweep"), force_add=True)
    params = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    assert params["tasks_per_node"] == tasks
    assert f"--ntasks-per-node={tasks}" in _sbatch_flags(params, tmp_path, monkeypatch)


def test_a_job_without_record_is_starting_while_its_process_lives_then_dead(tmp_path, capsys):
    from binexp.runs.record import RunLock

    sweep = tmp_path / "sweep"
    _recorded_sweep(sweep, ["data=synthetic", "seed=1,2"])
    job = sweep / "1_seed=2"
    (job / ".hydra").mkdir(parents=True)  # Hydra made it; the run has not written metrics.json
    lock = RunLock(job)
    assert lock.acquire()
    try:
        assert cli_main(["status", str(sweep)]) == 0
        assert capsys.readouterr().out.splitlines()[2].split()[:3] == ["1", "seed=2", "starting"]
    finally:
        lock.release()
    assert cli_main(["status", str(sweep)]) == 0  # its process died before writing its record
    assert capsys.readouterr().out.splitlines()[2].split() == ["1", "seed=2", "dead", "-", "-"]


def test_a_sweep_job_that_fails_before_its_record_says_failed(tmp_path, monkeypatch, capsys):
    """e.g. a tracker that cannot start (MLflow's store): the job records failed with the reason."""
    from binexp import run as run_module

    def broken(cfg, run_dir):
        raise RuntimeError("the tracking store cannot be created")

    monkeypatch.setattr(run_module, "build_loggers", broken)
    monkeypatch.chdir(tmp_path)
    sweep = tmp_path / "sweep"
    with pytest.raises(SystemExit):
        cli_main(
            ["train", "-m", "seed=1", *SMOKE, "hydra.sweep.subdir=${hydra.job.num}_job", f"hydra.sweep.dir={sweep}"]
        )
    m = read_metrics(sweep / "0_job")
    assert m["status"] == "failed" and m["error"] == "RuntimeError: the tracking store cannot be created"
    capsys.readouterr()
    assert cli_main(["status", str(sweep)]) == 0
    row = capsys.readouterr().out.splitlines()[1].split()
    assert row[0] == "0" and "seed=1" in row and row[-3:] == ["failed", "0/?", "-"], row


# --------------------------------------------------------------------------------- library noise
def test_a_local_imagefolder_run_on_a_small_cpu_machine_has_no_library_warnings(
    tmp_path, monkeypatch, imagefolder_root
):
    """srun on the PATH (a login node) and more loader workers than CPUs, no GPU: no srun hint, no
    worker-count or pin_memory warning (the workers are capped at the CPUs, memory pinned only for a GPU)."""
    import os
    import warnings

    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "srun").write_text("#!/bin/sh\nexit 0\n")
    (fake_bin / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake_bin}:{os.environ['PATH']}")
    monkeypatch.chdir(tmp_path)
    cpus = len(os.sched_getaffinity(0))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code = cli_main(
            [
                "train",
                "data=imagefolder",
                f"data.root={imagefolder_root}",
                "data.num_classes=3",
                "data.image_size=32",
                "data.batch_size=6",
                "data.eval_batch_size=6",
                f"data.num_workers={cpus + 2}",
                "model.width=0.25",
                "trainer.max_epochs=1",
                *QUICK,
                f"hydra.run.dir={tmp_path / 'run'}",
            ]
        )
    assert code == 0
    messages = [str(w.message) for w in caught]
    noisy = [m for m in messages if "srun" in m or "worker" in m or "pin_memory" in m]
    assert not noisy, noisy
