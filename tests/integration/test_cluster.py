"""Beyond one machine: the submitit launchers, sweeps that resume, ``binexp status``, Lightning's
SLURM requeue path (simulated on CPU) and the wandb / mlflow trackers."""

from __future__ import annotations

import json
import os
import signal
import struct
import sys
import time
from pathlib import Path

import pytest
import torch

from binexp.cli import main as cli_main
from tests.conftest import HANG_LIMIT, QUICK, read_metrics, run_cli

REPO = Path(__file__).resolve().parents[2]
TINY = [
    "data=synthetic",
    "data.train_size=128",
    "data.val_size=64",
    "data.batch_size=32",
    "data.eval_batch_size=64",
    "data.image_size=16",
    "trainer.limit_train_batches=2",
    "trainer.limit_val_batches=1",
    *QUICK,
]
SHORT_SUBDIR = "hydra.sweep.subdir=${hydra.job.num}_job"  # job dirs 0_job, 1_job, ... (test overrides make long names)


# ---------------------------------------------------------------------------------- launchers
def _launcher(overrides: list[str]) -> dict:
    from omegaconf import OmegaConf

    from binexp.preflight import compose

    cfg = compose(overrides)
    OmegaConf.update(cfg, "hydra.job.name", "train", force_add=True)
    OmegaConf.update(cfg, "hydra.sweep.dir", "/scratch/sweep", force_add=True)
    return OmegaConf.to_container(cfg.hydra.launcher, resolve=True)


def test_slurm_launcher_composes_into_the_sbatch_script_lightning_needs(tmp_path, monkeypatch):
    params = _launcher(
        [
            "hydra/launcher=slurm",
            "trainer=ddp",
            "trainer.num_nodes=2",
            "hydra.launcher.gpus_per_node=4",
            "hydra.launcher.partition=gpu",
            "hydra.launcher.account=bnn",
            "hydra.launcher.timeout_min=2880",
        ]
    )
    assert params["_target_"] == "hydra_plugins.binexp_launchers.SlurmLauncher"  # submitit's, a cancelled job alone
    assert (params["nodes"], params["gpus_per_node"], params["tasks_per_node"]) == (
        2,
        4,
        4,
    )  # nodes follow trainer.num_nodes
    assert (params["partition"], params["account"], params["timeout_min"]) == ("gpu", "bnn", 2880)
    assert (params["cpus_per_task"], params["mem_gb"], params["array_parallelism"]) == (8, 64, 16)
    assert params["max_num_timeout"] == 0 and params["additional_parameters"] == {"signal": "USR1@120"}
    assert params["submitit_folder"] == "/scratch/sweep/.submitit/%j"
    # the same mapping hydra-submitit-launcher's launch() applies, into submitit's sbatch text (no cluster needed)
    import submitit
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
    from omegaconf import OmegaConf

    base = set(OmegaConf.structured(BaseQueueConf).keys())
    monkeypatch.setattr(submitit.SlurmExecutor, "affinity", classmethod(lambda cls: 1))  # "srun is here"
    executor = submitit.AutoExecutor(
        cluster="slurm", folder=str(tmp_path), slurm_max_num_timeout=params["max_num_timeout"]
    )
    executor.update_parameters(
        **{
            k if k in base else f"slurm_{k}": v
            for k, v in params.items()
            if k not in ("_target_", "submitit_folder", "max_num_timeout")
        }
    )
    executor._executor.parameters["map_count"] = 3  # what map_array sets for a 3-job sweep
    text = executor._executor._make_submission_file_text("python -m submitit.core._submit", "uid")
    flags = {line.split()[1] for line in text.splitlines() if line.startswith("#SBATCH")}
    for flag in (
        "--nodes=2",
        "--ntasks-per-node=4",
        "--gpus-per-node=4",
        "--cpus-per-task=8",
        "--mem=64GB",
        "--time=2880",
        "--partition=gpu",
        "--account=bnn",
        "--signal=USR1@120",
        "--array=0-2%3",
    ):
        assert flag in flags, (flag, sorted(flags))
    assert not any(f.startswith("--signal=USR2") for f in flags)  # Lightning answers USR1, not submitit's USR2


def test_local_launcher_composes():
    params = _launcher(["hydra/launcher=local"])
    assert params["_target_"] == "hydra_plugins.binexp_launchers.LocalLauncher"
    assert (params["gpus_per_node"], params["tasks_per_node"], params["nodes"], params["timeout_min"]) == (
        0,
        1,
        1,
        1440,
    )


def test_cfg_hydra_shows_the_submitit_parameters(capsys):
    assert (
        cli_main(
            [
                "train",
                "--cfg",
                "hydra",
                "-p",
                "hydra.launcher",
                "hydra/launcher=slurm",
                "trainer=ddp",
                "trainer.num_nodes=2",
                "hydra.launcher.partition=gpu",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    for line in (
        "partition: gpu",
        "nodes: ${trainer.num_nodes}",
        "gpus_per_node: 1",
        "tasks_per_node: ${binexp_tasks_per_node:${.gpus_per_node},${trainer.devices}}",
        "timeout_min: 1440",
        "array_parallelism: 16",
        "signal: USR1@${hydra.launcher.signal_delay_s}",
        "_target_: hydra_plugins.binexp_launchers.SlurmLauncher",
    ):
        assert line in out, line


@pytest.mark.parametrize(
    "args, module, extra",
    [
        (["train", "-m", "hydra/launcher=slurm", "data=synthetic", "seed=1,2"], "submitit", "slurm"),
        (
            ["train", "-m", "hydra/launcher=local", "data=synthetic"],
            "hydra_plugins.hydra_submitit_launcher.submitit_launcher",
            "slurm",
        ),
        (["train", "logger=wandb", "data=synthetic"], "wandb", "wandb"),
        (["train", "logger=mlflow", "data=synthetic"], "mlflow", "mlflow"),
    ],
)
def test_a_missing_optional_package_is_one_line_with_the_install_command(
    monkeypatch, tmp_path, capsys, args, module, extra
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, module, None)  # `import <module>` now raises ImportError
    assert cli_main([*args, "hydra.run.dir=run"] if "-m" not in args else args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"fix: pip install 'binexp[{extra}]'" in err, err
    assert err.startswith("binexp: error: ") and module.split(".")[0] in err
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_unknown_tracker_field_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert cli_main(["train", "logger=wandb", "data=synthetic", "logger.wandb.mode=sometimes"]) == 2
    assert "logger.wandb.mode must be online, offline, disabled or null" in capsys.readouterr().err


# ------------------------------------------------------------------------------- sweep resume
def test_resume_checkpoint_prefers_the_newest_of_last_and_hpc(tmp_path):
    import torch

    from binexp.runs import sweep as sweep_resume

    def ckpt(path, step):
        torch.save({"state_dict": {}, "epoch": step // 2, "global_step": step}, path)

    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    assert sweep_resume.plan(run) == ("start", None, None)
    last = run / "checkpoints" / "last.ckpt"
    ckpt(last, 8)
    assert sweep_resume.plan(run) == ("resume", str(last), None)
    for n, step in ((1, 2), (2, 4), (10, 6)):
        ckpt(run / f"hpc_ckpt_{n}.ckpt", step)
    assert sweep_resume.plan(run) == ("resume", str(last), None)  # last.ckpt is past every hpc checkpoint
    ckpt(last, 5)
    action, path, note = sweep_resume.plan(run)
    assert (action, path) == (
        "resume",
        str(run / "hpc_ckpt_10.ckpt"),
    ) and "older" in note  # Lightning's requeue save is newer
    (run / "metrics.json").write_text(json.dumps({"status": "completed"}))
    assert sweep_resume.plan(run) == ("skip", None, None)
    assert sweep_resume.output_subdir(str(run)) is None and sweep_resume.output_subdir(str(tmp_path)) == ".hydra"
    assert sweep_resume.output_subdir(None) == ".hydra"


def _write_job(sweep: Path, num: int, record: dict | None) -> Path:
    d = sweep / f"{num}_job"
    (d / ".hydra").mkdir(parents=True)
    if record is not None:
        (d / "metrics.json").write_text(json.dumps(record))
    return d


def test_status_prints_one_line_per_job_in_every_state(tmp_path, capsys):
    from binexp.runs.record import RunLock

    sweep = tmp_path / "sweep"
    sweep.mkdir()
    (sweep / "multirun.yaml").write_text(
        "hydra:\n  overrides:\n    task:\n    - data=synthetic\n    - seed=1,2,3,4,5,6\n"
    )
    _write_job(sweep, 0, {"status": "completed", "epochs": 2, "max_epochs": 2, "best_val_acc1": 43.75})
    live = _write_job(sweep, 1, {"status": "running", "epochs": 1, "max_epochs": 2, "best_val_acc1": 31.25})
    _write_job(sweep, 2, {"status": "running", "epochs": 1, "max_epochs": 2, "best_val_acc1": 12.5})
    _write_job(sweep, 3, {"status": "failed", "epochs": 0, "max_epochs": 2, "best_val_acc1": None, "error": "X"})
    _write_job(sweep, 4, None)
    os.utime(sweep / "2_job" / "metrics.json", (1_700_000_000, 1_700_000_000))
    lock = RunLock(live)
    assert lock.acquire()
    try:
        assert cli_main(["status", str(sweep)]) == 0
    finally:
        lock.release()
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 7 and lines[0].split() == [
        "job",
        "overrides",
        "status",
        "epoch",
        "best",
        "acc1",
        "last",
        "update",
    ]
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(1_700_000_000))
    assert lines[1].split() == ["0", "seed=1", "completed", "2/2", "43.75"]
    assert (
        lines[2].split()[:5] == ["1", "seed=2", "running", "1/2", "31.25"] and len(lines[2].split()) == 7
    )  # + date, time
    assert lines[3].split() == [
        "2",
        "seed=3",
        "dead",
        "1/2",
        "12.50",
        *when.split(),
    ]  # running, but nobody holds its lock
    assert lines[4].split() == ["3", "seed=4", "failed", "0/2", "-"]
    assert lines[5].split() == ["4", "seed=5", "dead", "-", "-"]  # no record and no process: it died starting
    assert lines[6].split() == ["5", "seed=6", "not", "started", "-", "-"]


def test_status_of_a_missing_directory_is_one_line(tmp_path, capsys):
    assert cli_main(["status", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("binexp: error: no sweep directory at") and len(err.strip().splitlines()) == 1
    assert cli_main(["status", str(tmp_path)]) == 2
    assert "holds no sweep jobs" in capsys.readouterr().err


@pytest.mark.slow
def test_local_launcher_runs_a_two_job_sweep_into_one_directory(tmp_path):
    sweep = tmp_path / "sweep"
    r = run_cli(
        [
            "train",
            "-m",
            "hydra/launcher=local",
            "quantizer=fp,xnor",
            "trainer.max_epochs=1",
            *TINY,
            f"hydra.sweep.dir={sweep}",
        ],
        tmp_path,
        timeout=HANG_LIMIT,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    jobs = sorted(p for p in sweep.iterdir() if (p / "metrics.json").exists())
    assert [p.name for p in jobs] == ["0_quantizer=fp", "1_quantizer=xnor"]  # named by the swept values
    records = [read_metrics(p) for p in jobs]
    assert [m["quantizer"] for m in records] == ["fp", "xnor"]
    assert all(m["status"] == "completed" and m["epochs"] == 1 and m["global_step"] == 2 for m in records)
    assert all(
        m["best_val_acc1"] is not None and (p / "checkpoints" / "last.ckpt").is_file() for m, p in zip(records, jobs)
    )
    assert len(list((sweep / ".submitit").glob("*/*_submitted.pkl"))) == 2  # each job went through submitit's executor
    assert not (sweep / ".submitit" / "%j").exists()  # no empty folder named by submitit's placeholder
    lines = r.stdout.splitlines()  # the jobs' lines are in .submitit/; the sweep says how each ended
    assert f"sweep finished: 2 of 2 jobs completed in {sweep}" in "\n".join(lines), r.stdout
    assert [line.split()[:3] for line in lines[-2:]] == [
        ["0", "quantizer=fp", "completed"],
        ["1", "quantizer=xnor", "completed"],
    ]


@pytest.mark.slow
def test_a_killed_sweep_resumes_where_it_stopped(tmp_path, capsys):
    """3 jobs; the sweep process dies (SIGKILL) as job 1 starts its 2nd epoch. The same command again:
    job 0 is not retrained (checkpoint, metrics.json and .hydra/ unchanged), job 1 continues at
    epoch 1, job 2 trains from scratch."""
    sweep = tmp_path / "sweep"
    cmd = [
        "train",
        "-m",
        "seed=1,2,3",
        "trainer.max_epochs=2",
        *TINY,
        SHORT_SUBDIR,
        f"hydra.sweep.dir={sweep}",
    ]
    epoch_log = [("tests.support.killpoint.EpochLog", {})]
    env = {"PYTHONPATH": str(REPO)}
    r = run_cli(cmd, tmp_path, timeout=HANG_LIMIT, env={**env, "BINEXP_TEST_KILL": "1_job:1"}, callbacks=epoch_log)
    assert r.returncode == -signal.SIGKILL, r.stderr[-3000:]
    job0, job1, job2 = (sweep / f"{i}_job" for i in range(3))
    assert read_metrics(job0)["status"] == "completed" and not job2.exists()
    assert read_metrics(job1)["status"] == "running" and read_metrics(job1)["epochs"] == 1
    assert cli_main(["status", str(sweep)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert len(lines) == 4, out
    assert lines[1].split() == ["0", "seed=1", "completed", "2/2", f"{read_metrics(job0)['best_val_acc1']:.2f}"], out
    assert lines[2].split()[:4] == ["1", "seed=2", "dead", "1/2"] and len(lines[2].split()) == 7, (
        out
    )  # + the last update
    assert lines[3].split() == ["2", "seed=3", "not", "started", "-", "-"], out

    kept = [
        job0 / "checkpoints" / "last.ckpt",
        job0 / "metrics.json",
        *sorted((job0 / ".hydra").iterdir()),
        *sorted(job0.glob("events.out.tfevents.*")),
        job0 / "summary.json",
    ]
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in kept}
    r = run_cli(cmd, tmp_path, timeout=HANG_LIMIT, env=env, callbacks=epoch_log)
    assert r.returncode == 0, r.stderr[-3000:]
    assert {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in kept} == before  # job 0: not retrained, not rewritten
    assert (job0 / "epochs_started.txt").read_text().split() == ["0", "1"]
    assert (job1 / "epochs_started.txt").read_text().split() == [
        "0",
        "1",
        "1",
    ]  # killed at 1, resumed at 1: epoch 0 not redone
    assert (job2 / "epochs_started.txt").read_text().split() == ["0", "1"]
    m0, m1, m2 = (read_metrics(j) for j in (job0, job1, job2))
    assert [m["status"] for m in (m0, m1, m2)] == ["completed"] * 3
    assert [(m["epochs"], m["global_step"]) for m in (m0, m1, m2)] == [(2, 4)] * 3
    assert (
        "resuming" in (job1 / "train.log").read_text()
        and "already holds a completed run" in (job0 / "train.log").read_text()
    )
    assert cli_main(["status", str(sweep)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[2:4] for line in lines[1:]] == [["completed", "2/2"]] * 3


# ------------------------------------------------------------------------------- SLURM requeue
@pytest.mark.slow
def test_slurm_requeue_signal_saves_and_the_requeued_job_continues(tmp_path):
    """Lightning's SLURM auto-requeue on CPU: a SLURM environment (SLURMEnvironment detects it),
    a fake `scontrol` that records its call and then kills the job as SLURM's requeue does, and
    SIGUSR1 to the training process after epoch 0. The run saves hpc_ckpt_1.ckpt; the same
    command again (what the requeued job runs) resumes from it with the same R1/R2 and the same
    epoch count as an uninterrupted run."""
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    record = tmp_path / "scontrol.txt"
    (fake_bin / "scontrol").write_text('#!/bin/sh\necho "$@" >> "$SCONTROL_RECORD"\nkill -KILL $PPID\n')
    (fake_bin / "scontrol").chmod(0o755)
    env = {
        "PYTHONPATH": str(REPO),
        "PATH": f"{fake_bin}:{os.environ['PATH']}",
        "SCONTROL_RECORD": str(record),
        "SLURM_JOB_ID": "4242",
        "SLURM_NTASKS": "1",
        "SLURM_JOB_NAME": "binexp",
        "SLURM_PROCID": "0",
        "SLURM_LOCALID": "0",
        "SLURM_NODEID": "0",
        "SLURM_NODELIST": "localhost",
    }
    sweep = tmp_path / "sweep"
    cmd = [
        "train",
        "-m",
        "quantizer=rbnn",
        "trainer.max_epochs=3",
        *TINY,
        SHORT_SUBDIR,
        f"hydra.sweep.dir={sweep}",
    ]
    extra = [
        ("tests.support.killpoint.RequeueSignal", {}),
        ("tests.support.killpoint.EpochLog", {}),
        ("tests.support.rank_state.RankStateDump", {}),
    ]
    r = run_cli(cmd, tmp_path, timeout=HANG_LIMIT, env={**env, "BINEXP_TEST_SIGUSR1": "0"}, callbacks=extra)
    assert r.returncode == -signal.SIGKILL, r.stderr[-3000:]
    assert record.read_text().split() == ["requeue", "4242"]  # Lightning asked SLURM to requeue this job
    job = sweep / "0_job"
    hpc = job / "hpc_ckpt_1.ckpt"
    saved = torch.load(hpc, map_location="cpu", weights_only=True)
    assert (saved["epoch"], saved["global_step"]) == (0, 2)
    assert not (
        job / "checkpoints" / "last.ckpt"
    ).exists()  # killed before the epoch's own checkpoint: only hpc holds it

    r = run_cli(
        cmd, tmp_path, timeout=HANG_LIMIT, env=env, callbacks=extra
    )  # the requeued job: same command, same job id
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"resuming {job} from {hpc}" in r.stdout + r.stderr  # binexp's own line (Lightning's INFO is quiet)
    m = read_metrics(job)
    assert (m["status"], m["epochs"], m["global_step"]) == ("completed", 3, 6)  # 3 epochs of 2 steps, none repeated
    assert (job / "epochs_started.txt").read_text().split() == ["0", "1", "2"]
    dump = torch.load(job / "rank_state" / "rank0.pt", map_location="cpu", weights_only=False)
    sd = saved["state_dict"]
    assert len(dump["start_state"]) == 18
    for name, state in dump["start_state"].items():
        for key in ("R1", "R2", "theta"):
            assert torch.equal(state[key], sd[f"net.{name}.{key}"]), (
                name,
                key,
            )  # the resumed run starts from the saved R
        assert int(state["rotation_updates"]) == 1  # epoch 0's update only
        assert int(dump["state"][name]["rotation_updates"]) == 3  # one per epoch: the resume did not redo an update
        assert not torch.equal(dump["state"][name]["R1"], state["R1"])  # and the rotation kept being solved


# ------------------------------------------------------------------------------------ trackers
def _wandb_records(path: Path):
    """The protobuf records of an offline W&B run file (``run-<id>.wandb``: wandb's LevelDB-style log
    of 32 KiB blocks, 7-byte file header and 7-byte record headers; full/first/middle/last chunks)."""
    from wandb.proto import wandb_internal_pb2 as pb

    data, pos, block, parts = path.read_bytes(), 7, 32768, b""
    assert data[:4] == b":W&B"
    while pos + 7 <= len(data):
        left = block - pos % block
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7]) if left >= 7 else (0, 0, 0)
        if kind == 0:
            pos += left
            continue
        chunk, pos = data[pos + 7 : pos + 7 + length], pos + 7 + length
        parts = chunk if kind in (1, 2) else parts + chunk
        if kind in (1, 4):
            rec = pb.Record()
            rec.ParseFromString(parts)
            yield rec


def _items(items) -> dict:
    return {i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in items}


@pytest.mark.slow
def test_wandb_offline_records_the_scalars_and_the_config(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_SILENT", raising=False)  # as a user's shell: binexp itself quiets W&B
    run = tmp_path / "run"
    bin_dir = tmp_path / "bin"  # a machine with SLURM's srun on the PATH (Lightning hints at it)
    bin_dir.mkdir()
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "srun").chmod(0o755)
    r = run_cli(
        ["train", "logger=wandb", "trainer.max_epochs=2", *TINY, f"hydra.run.dir={run}"],
        tmp_path,
        timeout=HANG_LIMIT,
        env={"WANDB_MODE": "", "WANDB_API_KEY": "", "PATH": f"{bin_dir}:{os.environ['PATH']}"},
    )
    assert r.returncode == 0, r.stderr[-3000:]
    starts = [line.split(" ", 1)[0] for line in (r.stdout + r.stderr).splitlines()]
    assert starts == ["resnet20", "deployed", "epoch", "epoch", "completed"], r.stdout + r.stderr  # no W&B lines
    files = list((run / "wandb").glob("offline-run-*/run-*.wandb"))  # offline by default, inside the run directory
    assert len(files) == 1
    history, config, summary = [], {}, {}
    for rec in _wandb_records(files[0]):
        kind = rec.WhichOneof("record_type")
        if kind == "history":
            history.append(_items(rec.history.item))
        elif kind == "config":
            config.update(_items(rec.config.update))
        elif kind == "summary":
            summary.update(_items(rec.summary.update))
    m = read_metrics(run)
    val = [h for h in history if "val/acc1" in h]
    assert [h["epoch"] for h in val] == [0, 1]
    assert val[-1]["val/acc1"] == pytest.approx(m["val_acc1"]) and summary["val/acc1_best"] == pytest.approx(
        m["best_val_acc1"]
    )
    assert {"train/loss", "train/acc1"} <= set().union(*history) and any("lr-SGD" in h for h in history)
    assert config["run_config"]["quantizer"]["name"] == "xnor" and config["run_config"]["data"]["train_size"] == 128
    assert config["run_config"]["trainer"]["max_epochs"] == 2 and config["num_classes"] == 10
    assert list(run.glob("events.out.tfevents.*"))  # TensorBoard still gets everything


@pytest.mark.slow
def test_mlflow_sqlite_store_records_the_scalars_and_the_config(tmp_path, monkeypatch, capfd):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    run = tmp_path / "run"
    assert cli_main(["train", "logger=mlflow", "trainer.max_epochs=2", *TINY, f"hydra.run.dir={run}"]) == 0
    out, err = capfd.readouterr()  # no MLflow database set-up, no "Experiment ... Creating it."
    starts = [line.split(" ", 1)[0] for line in (out + err).splitlines()]
    assert starts == ["resnet20", "deployed", "epoch", "epoch", "completed"], out + err  # binexp's lines only
    from mlflow.tracking import MlflowClient

    store = tmp_path / "outputs" / "mlflow.db"  # the default: a local SQLite store under ./outputs
    assert store.is_file()
    client = MlflowClient(tracking_uri=f"sqlite:///{store}")
    exp = client.get_experiment_by_name("binexp")
    (found,) = client.search_runs([exp.experiment_id])
    assert found.info.run_name == "run" and found.data.tags["binexp.run_dir"] == str(run)
    m = read_metrics(run)
    val = client.get_metric_history(found.info.run_id, "val/acc1")
    assert len(val) == 2 and val[-1].value == pytest.approx(m["val_acc1"])
    assert found.data.metrics["val/acc1_best"] == pytest.approx(m["best_val_acc1"])
    assert {"train/loss", "train/acc1", "val/loss", "lr-SGD"} <= set(found.data.metrics)
    params = found.data.params
    assert params["run_config/quantizer/name"] == "xnor" and params["run_config/data/train_size"] == "128"
    assert params["run_config/trainer/max_epochs"] == "2" and params["num_classes"] == "10"


def test_a_submitit_sweep_ends_with_one_line_per_job_and_no_empty_percent_j_folder(tmp_path, capsys):
    """``hydra/launcher=local``: the jobs' own lines went to .submitit/, so the sweep process prints
    how each job ended; the empty ``.submitit/%j`` that submitit's local executor makes is gone,
    the jobs' log folders are kept. The basic launcher (jobs in this process) adds nothing."""
    from omegaconf import OmegaConf

    from binexp.sweep_end import SweepEnd

    sweep = tmp_path / "sweep"
    for num, quantizer, status in ((0, "fp", "completed"), (1, "xnor", "failed")):
        job = sweep / f"{num}_quantizer={quantizer}"
        job.mkdir(parents=True)
        record = {"status": status, "epochs": 1, "max_epochs": 1, "best_val_acc1": 12.5 + num}
        (job / "metrics.json").write_text(json.dumps({**record, "overrides": [f"quantizer={quantizer}"]}))
        (job / ".hydra").mkdir()
        (job / ".hydra" / "overrides.yaml").write_text(f"- quantizer={quantizer}\n")
    (sweep / ".submitit" / "%j").mkdir(parents=True)
    (sweep / ".submitit" / "4242_0").mkdir()
    (sweep / ".submitit" / "4242_0" / "4242_0_0_log.out").write_text("epoch 1/1 ...\n")
    params = _launcher(["hydra/launcher=local"])
    config = OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep)}, "launcher": {**params}}})
    config.hydra.launcher.submitit_folder = str(sweep / ".submitit" / "%j")
    SweepEnd().on_multirun_end(config)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"sweep finished: 1 of 2 jobs completed in {sweep} (job logs: {sweep / '.submitit'})"
    assert [line.split()[:5] for line in lines[2:]] == [
        ["0", "quantizer=fp", "completed", "1/1", "12.50"],
        ["1", "quantizer=xnor", "failed", "1/1", "13.50"],
    ]
    assert sorted(p.name for p in (sweep / ".submitit").iterdir()) == ["4242_0"]
    config.hydra.launcher._target_ = "hydra._internal.core_plugins.basic_launcher.BasicLauncher"
    SweepEnd().on_multirun_end(config)
    assert capsys.readouterr().out == ""
