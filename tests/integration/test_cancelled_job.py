"""A sweep job that SLURM cancels (submitit's ``UncompletedJobError``: no result) is a failed job
of the sweep: the sweep process waits for every job, prints one line for it, and ``binexp status``
says ``failed`` for it. In-process through the CLI's entry function with submitit's jobs faked
(no SLURM here): ``map_array`` submits nothing and returns jobs whose results are given."""

from __future__ import annotations

import json
import re
import sys

import pytest
from hydra.core.utils import JobReturn, JobStatus

from binexp.cli import main
from tests.conftest import QUICK

pytest.importorskip("hydra_plugins.hydra_submitit_launcher")


def fake_jobs(n: int) -> list:
    """``n`` submitit jobs that were never submitted (their results are monkeypatched)."""
    from submitit.core.core import Job

    jobs = []
    for num in range(n):
        job = object.__new__(Job)
        job.num = num  # type: ignore[attr-defined]
        job._cancel_at_deletion = False  # type: ignore[attr-defined]  # submitit's __del__ reads it
        jobs.append(job)
    return jobs


def test_a_cancelled_sweep_job_is_one_line_and_failed_in_status(tmp_path, monkeypatch, capsys):
    import submitit
    from submitit.core.core import Job
    from submitit.core.utils import UncompletedJobError

    sweep = tmp_path / "sweep"
    asked: list[int] = []

    def outcome(job):  # job 0 completed; job 1 was training when SLURM cancelled it (SIGKILL: no record)
        asked.append(job.num)
        if job.num == 0:
            return [JobReturn(overrides=["seed=1"], status=JobStatus.COMPLETED, _return_value=50.0)]
        raise UncompletedJobError(f"Job 4242_{job.num} (task: 0) with path /x has state CANCELLED\nmore detail")

    def map_array(self, fn, *args):  # what the scheduler left in the sweep directory
        for num, seed in enumerate((1, 2)):
            d = sweep / f"{num}_seed={seed}"
            (d / ".hydra").mkdir(parents=True)
            (d / ".hydra" / "overrides.yaml").write_text(f"- seed={seed}\n")
            status = "completed" if num == 0 else "running"
            (d / "metrics.json").write_text(json.dumps({"status": status, "epochs": num, "max_epochs": 2}))
        return fake_jobs(2)

    monkeypatch.setattr(submitit.AutoExecutor, "map_array", map_array)
    monkeypatch.setattr(Job, "results", outcome)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BINEXP_VERB", "")
    monkeypatch.setattr(sys, "argv", ["binexp"])
    args = ["train", "-m", "hydra/launcher=local", "data=synthetic", "seed=1,2", f"hydra.sweep.dir={sweep}", *QUICK]
    capsys.readouterr()
    try:
        code = main(args)
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    assert code == 1 and asked == [0, 1], (code, asked, err)
    assert f"sweep finished: 1 of 2 jobs completed in {sweep}" in out, out  # the sweep's table, then exit 1
    assert "Traceback" not in err and "UncompletedJobError" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith(
        "binexp: error: sweep job #1 (seed=2) ended without a result "
        "(Job 4242_1 (task: 0) with path /x has state CANCELLED); "
    ), lines[0]
    assert f"fix: run the same command again (hydra.sweep.dir={sweep})" in lines[0]

    from binexp.commands.status import job_rows

    assert [r["status"] for r in job_rows(sweep)] == ["completed", "failed"]
    record = json.loads((sweep / "1_seed=2" / "metrics.json").read_text())
    assert record["epochs"] == 1 and record["error"].startswith("ended without a result")


def test_a_job_cancelled_in_the_queue_is_failed_in_status(tmp_path, monkeypatch, capsys):
    """scancel of a job still pending: it never ran, so it has no directory; the sweep's
    unfinished_jobs.json carries its ``failed`` (and a later re-run's directory takes over)."""
    import submitit
    from submitit.core.core import Job
    from submitit.core.utils import UncompletedJobError

    from binexp.commands.status import UNFINISHED_FILE, job_rows

    sweep = tmp_path / "sweep"

    def outcome(job):
        if job.num == 0:
            return [JobReturn(overrides=["seed=1"], status=JobStatus.COMPLETED, _return_value=50.0)]
        raise UncompletedJobError(f"Job 4242_{job.num} has state CANCELLED")

    def map_array(self, fn, *args):  # job 0 ran; job 1 was cancelled before it started (no directory)
        d = sweep / "0_seed=1"
        (d / ".hydra").mkdir(parents=True)
        (d / ".hydra" / "overrides.yaml").write_text("- seed=1\n")
        (d / "metrics.json").write_text(json.dumps({"status": "completed", "epochs": 2, "max_epochs": 2}))
        return fake_jobs(2)

    monkeypatch.setattr(submitit.AutoExecutor, "map_array", map_array)
    monkeypatch.setattr(Job, "results", outcome)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BINEXP_VERB", "")
    monkeypatch.setattr(sys, "argv", ["binexp"])
    args = ["train", "-m", "hydra/launcher=local", "data=synthetic", "seed=1,2", f"hydra.sweep.dir={sweep}", *QUICK]
    try:
        code = main(args)
    except SystemExit as e:
        code = e.code
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err, err
    assert not (sweep / "1_seed=2").exists()
    assert [(r["status"], r["dir"]) for r in job_rows(sweep)] == [
        ("completed", str(sweep / "0_seed=1")),
        ("failed", None),
    ]
    assert json.loads((sweep / UNFINISHED_FILE).read_text()) == {
        "1": "ended without a result (Job 4242_1 has state CANCELLED)"
    }
    assert main(["status", str(sweep)]) == 0  # a row that says failed, no error line
    out = capsys.readouterr().out
    assert re.search(r"^1\s+seed=2\s+failed\b", out, re.M), out

    # a re-run gives the job its directory: that directory's record counts from then on
    d = sweep / "1_seed=2"
    (d / ".hydra").mkdir(parents=True)
    (d / ".hydra" / "overrides.yaml").write_text("- seed=2\n")
    (d / "metrics.json").write_text(json.dumps({"status": "completed", "epochs": 2, "max_epochs": 2}))
    assert [r["status"] for r in job_rows(sweep)] == ["completed", "completed"]


def test_a_queued_array_task_cancelled_without_a_trace_ends_the_wait(monkeypatch):
    """Measured on a one-node SLURM 22.05: ``scancel <array>_1`` of a task still queued leaves no
    record in ``sacct`` and submitit keeps the ``PENDING`` it last read, so its wait never ended.
    Gone from ``squeue`` for the grace period without being done: the job ended without a result."""
    from binexp import launchers

    class SlurmJob:  # what the wait reads of submitit's SlurmJob
        job_id = "9_1"
        state = "PENDING"  # stale: sacct no longer lists the task
        done_calls = 0

        def done(self):
            self.done_calls += 1
            return False

    queue = {"9_1": [True, True, False, False, False]}  # queued twice, then gone
    monkeypatch.setattr(launchers, "_in_squeue", lambda job_id: queue[job_id].pop(0) if queue[job_id] else False)
    job = SlurmJob()
    with pytest.raises(launchers.VanishedJob, match="Job 9_1 left the queue without a result"):
        launchers.wait_unless_vanished(job, poll_s=0.0, grace_s=0.0)
    assert job.done_calls == 3  # waited while it was queued, ended at the first check it was gone

    class Finished(SlurmJob):
        def done(self):
            return True

    launchers.wait_unless_vanished(Finished(), poll_s=0.0, grace_s=0.0)  # done: returns at once

    queue["9_1"] = [True] * 3 + [False] * 3  # back in the queue (requeued) resets the grace period
    clock = iter(range(100))
    monkeypatch.setattr("time.monotonic", lambda: next(clock))
    with pytest.raises(launchers.VanishedJob):
        launchers.wait_unless_vanished(SlurmJob(), poll_s=0.0, grace_s=2.0)
