"""Hydra's submitit launchers (``hydra/launcher=slurm`` and ``=local``) with one difference: a job
that ends without a result - cancelled (``scancel``), its node lost, killed past its time limit -
is a failed job of the sweep, not the end of the sweep process.

hydra-submitit-launcher waits for the jobs' results in order, and submitit raises
``UncompletedJobError`` for a job that has none: the sweep process then stopped there with that
traceback while the other jobs went on running. Here every job is waited for; one without a
result gets ``failed`` in its ``metrics.json`` (unless its own process recorded how it ended,
e.g. ``interrupted`` on SLURM's SIGTERM) and is reported as one line; the sweep's table follows
when all jobs have ended, and the sweep exits with status 1.
Hydra takes launchers from its ``hydra_plugins`` package only: the classes are
``hydra_plugins.binexp_launchers.SlurmLauncher`` and ``LocalLauncher`` (``_target_`` of
``conf/hydra/launcher/*.yaml``), made of :class:`EveryJob` and submitit's launchers."""

from __future__ import annotations

import contextlib
import itertools
import json
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from hydra.core.utils import JobReturn, JobStatus

from binexp.errors import BinexpError
from binexp.runs import UNFINISHED_JOBS


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def record_unfinished(job_dir: Path | None, reason: str) -> None:
    """``metrics.json`` of a job that ended without a result says ``failed`` (kept: a record its own
    process finished - completed, interrupted or failed - and a job whose process still holds its lock)."""
    from binexp.runs.record import is_held, read_record
    from binexp.safeio import atomic_write_text

    if job_dir is None or not job_dir.is_dir() or is_held(job_dir):
        return
    try:
        record = read_record(job_dir)
    except (OSError, BinexpError):
        record = {"run_dir": str(job_dir), "epochs": 0}
    if record.get("status") in ("completed", "interrupted", "failed"):
        return
    record.update(status="failed", error=reason)
    with contextlib.suppress(OSError):
        atomic_write_text(job_dir / "metrics.json", json.dumps(record, indent=2, sort_keys=True))


def record_unstarted(sweep_dir: Path, num: int, reason: str) -> None:
    """A job cancelled while it waited in the queue has no directory to hold its record: the sweep's
    ``unfinished_jobs.json`` says ``failed`` for it instead (``binexp status`` reads it for a job
    without a directory; once a re-run gives the job a directory, that directory's record counts)."""
    from binexp.commands.status import UNFINISHED_FILE, unstarted_failures
    from binexp.safeio import atomic_write_text

    if not sweep_dir.is_dir():
        return
    known = unstarted_failures(sweep_dir)
    known[num] = reason
    with contextlib.suppress(OSError):
        atomic_write_text(
            sweep_dir / UNFINISHED_FILE, json.dumps({str(k): v for k, v in sorted(known.items())}, indent=2)
        )


def _job_dir(sweep_dir: Path, num: int) -> Path | None:
    from binexp.commands.status import job_dirs

    return job_dirs(sweep_dir).get(num) if sweep_dir.is_dir() else None


def unfinished_job(sweep_dir: Path, num: int, overrides: Sequence[str], error: BaseException) -> JobReturn:
    """Sweep job ``num`` ended without a result: its record says ``failed``, one line says so, and
    the sweep goes on to its end (its table: :class:`binexp.sweep_end.SweepEnd`), then ``binexp train``
    exits with status 1 (:data:`binexp.runs.UNFINISHED_JOBS`).
    The :class:`JobReturn` carries no exception: Hydra would print it with two lines of its own."""
    import os

    from binexp.runs import SWEPT_ENV

    reason = f"ended without a result ({_first_line(error)})"
    UNFINISHED_JOBS.append(num)
    job_dir = _job_dir(sweep_dir, num)
    if job_dir is None:
        record_unstarted(sweep_dir, num, reason)
    else:
        record_unfinished(job_dir, reason)
    swept = {k for k in os.environ.get(SWEPT_ENV, "").split(",") if k}  # the values that name the job
    named = [o for o in overrides if o.split("=", 1)[0].lstrip("+~") in swept] or list(overrides)
    print(
        f"binexp: error: sweep job #{num} ({' '.join(named)}) {reason}; fix: run the same command again "
        f"(hydra.sweep.dir={sweep_dir}) to resume the jobs that did not complete",
        file=sys.stderr,
        flush=True,
    )
    return JobReturn(overrides=list(overrides), status=JobStatus.COMPLETED, _return_value=None)


class VanishedJob(Exception):
    """A SLURM job that neither ``squeue`` nor ``sacct`` knows any more."""


VANISHED_AFTER_S = 150.0  # gone from squeue this long without an end in sacct: ended without a result


def _in_squeue(job_id: str) -> bool:
    import subprocess

    try:
        out = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%i"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return True  # cannot tell: keep waiting, as submitit would
    return out.returncode != 0 or bool(out.stdout.strip())


def wait_unless_vanished(job, poll_s: float = 5.0, grace_s: float | None = None) -> None:
    """submitit's wait, except for a SLURM array task cancelled while it was still queued: SLURM
    keeps no accounting record of it, so ``sacct`` never reports its end and submitit keeps the
    ``PENDING`` it last read (or ``UNKNOWN``): the sweep would wait for it forever. A job that has
    left ``squeue`` and is still not done ``grace_s`` seconds later (more than submitit's 60 s
    between ``sacct`` calls, after which a job that really ended has its result or its final
    state) ended without a result."""
    import time

    if type(job).__name__ != "SlurmJob":
        return  # the local executor knows its processes: submitit's own wait ends
    grace = VANISHED_AFTER_S if grace_s is None else grace_s
    gone_since = None
    while not job.done():
        if _in_squeue(str(job.job_id)):
            gone_since = None
        else:
            gone_since = time.monotonic() if gone_since is None else gone_since
            if time.monotonic() - gone_since >= grace:
                raise VanishedJob(
                    f"Job {job.job_id} left the queue without a result or an end in sacct "
                    f"(cancelled while it was queued)"
                )
        time.sleep(poll_s)


@contextlib.contextmanager
def _results_of_every_job(sweep_dir: Path, job_overrides: Sequence[Sequence[str]], first: int) -> Iterator[None]:
    """While the launcher collects its jobs' results (``job.results()``, in submission order), one
    without a result is :func:`unfinished_job` instead of an exception that ends the sweep process."""
    from submitit.core.core import Job
    from submitit.core.utils import UncompletedJobError

    original = Job.results
    position = itertools.count()

    def results(job):
        n = next(position)
        try:
            wait_unless_vanished(job)
            return original(job)
        except (UncompletedJobError, VanishedJob) as e:
            return [unfinished_job(sweep_dir, first + n, job_overrides[n], e)]

    Job.results = results  # type: ignore[method-assign]
    try:
        yield
    finally:
        Job.results = original  # type: ignore[method-assign]


class EveryJob:
    """Mixed into submitit's launchers: every job's result, a failed one for a job without any."""

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        sweep_dir = Path(str(self.config.hydra.sweep.dir))  # type: ignore[attr-defined]
        with _results_of_every_job(sweep_dir, job_overrides, initial_job_idx):
            return super().launch(job_overrides, initial_job_idx)  # type: ignore[misc]


__all__ = ["EveryJob", "record_unfinished", "record_unstarted", "unfinished_job"]
