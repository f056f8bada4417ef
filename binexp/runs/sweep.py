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

from pathlib import Path
from typing import Any


def read_record(run_dir: str | Path) -> dict | None:
    from binexp.errors import BinexpError
    from binexp.runs.record import read_record

    try:
        return read_record(run_dir)
    except (OSError, BinexpError):
        return None


def is_completed(run_dir: str | Path) -> bool:
    record = read_record(run_dir)
    return record is not None and record.get("status") == "completed"


def plan(run_dir: str | Path) -> tuple[str, str | None, str | None]:
    """``("skip", None, None)``, ``("resume", ckpt_path, note)`` or ``("start", None, None)`` for a
    sweep job; the checkpoint is chosen as ``resume=`` chooses it (:func:`binexp.runs.resume.find_checkpoint`)."""
    from binexp.runs.resume import find_checkpoint

    if is_completed(run_dir):
        return "skip", None, None
    ckpt, note = find_checkpoint(run_dir)
    return ("resume", str(ckpt), note) if ckpt is not None else ("start", None, None)


IGNORED_KEYS = {"verbose"}  # console output only: a re-run may change it


def _by_key(overrides: list[str]) -> dict[str, str]:
    out = {}
    for o in overrides:
        key, sep, value = str(o).partition("=")
        key = key.lstrip("+~")
        if sep and key not in IGNORED_KEYS and not key.startswith(("hydra.", "hydra/")):
            out[key] = value
    return out


def check_same_sweep(sweep_dir: str | Path, overrides: list[str]) -> None:
    """A sweep re-run into an existing sweep directory continues that sweep, so it must be the
    same sweep: its task overrides (all but ``hydra.*`` and ``verbose``) equal those its
    ``multirun.yaml`` recorded. Otherwise one line naming the keys that differ (the finished jobs
    would be skipped as completed and the report would show their old numbers)."""
    from binexp.errors import BinexpError
    from binexp.safeio import read_yaml

    recorded = Path(sweep_dir) / "multirun.yaml"
    if not recorded.exists():
        return
    saved: Any = read_yaml(recorded)  # plain data (a link, a FIFO, a huge file or aliases: one line)
    try:
        old = _by_key([str(o) for o in saved["hydra"]["overrides"]["task"]])
    except (TypeError, KeyError):  # not what Hydra writes: the sweep cannot be checked, so it is not continued
        raise BinexpError(
            f"{recorded} cannot be read, so this sweep cannot be checked against it; fix: choose a new hydra.sweep.dir"
        ) from None
    new = _by_key(overrides)
    differ = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
    if differ:
        changes = ", ".join(f"{k}: {old.get(k, '(not set)')} -> {new.get(k, '(not set)')}" for k in differ)
        raise BinexpError(
            f"{sweep_dir} holds a sweep with other overrides ({changes}); re-running into it continues that "
            f"sweep; fix: choose a new hydra.sweep.dir, or repeat that sweep's overrides to continue it"
        )


def output_subdir(output_dir: str | None) -> str | None:
    """The resolver behind ``hydra.output_subdir``: ``.hydra``, except null for a job directory
    that holds a completed run, so that re-running a sweep leaves that run's ``.hydra/`` as it was."""
    if output_dir and is_completed(output_dir):
        return None
    return ".hydra"


def swept_dirname(*, _root_) -> str:
    """``hydra.sweep.subdir``'s tail: the overrides of the keys the sweep varies (set by
    ``binexp train -m``), not every override (Hydra's ``override_dirname``, often ~90 chars)."""
    import os

    from omegaconf import OmegaConf

    from binexp.runs import SWEPT_ENV

    keys = {k for k in os.environ.get(SWEPT_ENV, "").split(",") if k}
    keys |= set(OmegaConf.select(_root_, "hydra.sweeper.params", default=None) or {})  # a preset's sweep
    keys -= set(_root_.hydra.job.config.override_dirname.exclude_keys)  # e.g. data.root: paths never name a job
    full = str(_root_.hydra.job.override_dirname)
    if not keys:
        return full
    parts = [
        str(o).replace(os.sep, "_") for o in _root_.hydra.overrides.task if str(o).split("=", 1)[0].lstrip("+~") in keys
    ]
    return ",".join(parts) or full


def register_resolver() -> None:
    """The resolvers of ``conf/train.yaml``'s ``hydra.*`` (no torch: ``--cfg hydra --resolve`` uses them too)."""
    from omegaconf import OmegaConf

    if not OmegaConf.has_resolver("binexp_output_subdir"):
        OmegaConf.register_new_resolver("binexp_output_subdir", output_subdir, use_cache=False)
    if not OmegaConf.has_resolver("binexp_swept"):
        OmegaConf.register_new_resolver("binexp_swept", swept_dirname)


register_resolver()
