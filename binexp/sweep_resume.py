"""Sweeps that resume: a job of a sweep re-run into the same sweep directory
(``binexp train -m ... hydra.sweep.dir=<existing>``) looks at its own job directory first.

- ``completed`` (its ``metrics.json`` says so): the job is skipped and nothing of the run is
  touched: Hydra does not rewrite its ``.hydra/`` either (``hydra.output_subdir`` resolves to
  null for it, see :func:`output_subdir`); only the job's log gains a line saying it was skipped;
- it has a checkpoint (an interrupted, failed or killed run, or one SLURM preempted): it resumes
  from the newest of ``checkpoints/last.ckpt`` and Lightning's ``hpc_ckpt_<n>.ckpt`` (written on
  SLURM's requeue signal), through Lightning's own ``ckpt_path``, so epochs continue;
- nothing: it starts, as a new job would.

A job whose run a live process is still training (its ``.lock`` is held) is not started twice
(``run_training`` takes the lock)."""

from __future__ import annotations

import json
import re
from pathlib import Path

CHECKPOINT = Path("checkpoints") / "last.ckpt"
_HPC = re.compile(r"^hpc_ckpt_(\d+)\.ckpt$")


def read_record(run_dir: str | Path) -> dict | None:
    try:
        return json.loads((Path(run_dir) / "metrics.json").read_text())
    except (OSError, ValueError):
        return None


def is_completed(run_dir: str | Path) -> bool:
    record = read_record(run_dir)
    return bool(record) and record.get("status") == "completed"


def hpc_checkpoint(run_dir: str | Path) -> Path | None:
    """Lightning's newest ``hpc_ckpt_<n>.ckpt`` in the run directory (its ``default_root_dir``)."""
    found = [(int(m.group(1)), p) for p in Path(run_dir).glob("hpc_ckpt_*.ckpt") if (m := _HPC.match(p.name))]
    return max(found)[1] if found else None


def resume_checkpoint(run_dir: str | Path) -> str | None:
    """What ``trainer.fit(ckpt_path=...)`` continues from: ``"hpc"`` (Lightning's keyword for its
    newest ``hpc_ckpt_<n>.ckpt``) when that is newer than ``last.ckpt``, else the path of
    ``last.ckpt``; None when the run has no checkpoint."""
    last = Path(run_dir) / CHECKPOINT
    hpc = hpc_checkpoint(run_dir)
    if hpc is not None and (not last.is_file() or hpc.stat().st_mtime_ns >= last.stat().st_mtime_ns):
        return "hpc"
    return str(last) if last.is_file() else None


def plan(run_dir: str | Path) -> tuple[str, str | None]:
    """``("skip", None)``, ``("resume", ckpt_path)`` or ``("start", None)`` for a sweep job."""
    if is_completed(run_dir):
        return "skip", None
    ckpt = resume_checkpoint(run_dir)
    return ("resume", ckpt) if ckpt else ("start", None)


def output_subdir(output_dir: str | None) -> str | None:
    """The resolver behind ``hydra.output_subdir``: ``.hydra``, except null for a job directory
    that holds a completed run, so that re-running a sweep leaves that run's ``.hydra/`` as it was."""
    if output_dir and is_completed(output_dir):
        return None
    return ".hydra"


def register_resolver() -> None:
    from omegaconf import OmegaConf

    if not OmegaConf.has_resolver("binexp_output_subdir"):
        OmegaConf.register_new_resolver("binexp_output_subdir", output_subdir, use_cache=False)


register_resolver()
