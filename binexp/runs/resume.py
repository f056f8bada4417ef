"""Which checkpoint ``resume=<run dir>`` continues from, and whether there is anything to do.

``checkpoints/last.ckpt`` when it is readable; otherwise (a run killed before its first
``last.ckpt``, or during its write) the newest readable checkpoint in ``checkpoints/`` by global
step. Every epoch's data order and augmentation derive from (seed, epoch), so resuming from any
of them ends in the same network as the uninterrupted run."""

from __future__ import annotations

from pathlib import Path

from binexp.errors import BinexpError
from binexp.runs.checkpoint import _first_line, load
from binexp.runs.layout import CHECKPOINT_DIR, LAST, check_run_files, quote_path


def read_position(path: Path) -> tuple[int, int] | None:
    """(global_step, epoch) of a readable Lightning checkpoint, else None (loaded with
    ``weights_only=True``)."""
    if not path.is_file():
        return None
    try:
        state = load(path, "resume")
    except BinexpError:  # unreadable or refused: not a candidate
        return None
    if "epoch" not in state:
        return None
    return int(state.get("global_step", 0)), int(state["epoch"])


def find_checkpoint(run_dir: str | Path) -> tuple[Path | None, str | None]:
    """The checkpoint a run continues from and a note when it is not ``last.ckpt``; (None, None)
    when the run has no checkpoint file at all.

    Candidates: ``checkpoints/last.ckpt``, the other ``checkpoints/*.ckpt`` and Lightning's
    ``hpc_ckpt_<n>.ckpt`` (written in the run directory on SLURM's requeue signal). The readable
    one with the highest global step wins; at equal steps ``last.ckpt``, then an hpc checkpoint.
    A ``last.ckpt`` that asks to build objects is refused outright, never skipped in silence."""
    run_dir = Path(run_dir)
    folder = run_dir / CHECKPOINT_DIR
    last = folder / LAST
    if last.exists():
        try:
            load(last, "resume")
        except BinexpError as e:
            if "asks to build" in str(e):
                raise
    others = [p for p in sorted(folder.glob("*.ckpt")) if p.name != LAST] if folder.is_dir() else []
    hpc = sorted(run_dir.glob("hpc_ckpt_*.ckpt"))
    candidates = ([last] if last.exists() else []) + others + hpc
    if not candidates:
        return None, None
    readable = [(pos, p) for p in candidates if (pos := read_position(p)) is not None]
    if not readable:
        load(candidates[0], "resume")  # the exact one line: not a torch archive, truncated, no state_dict...
        raise BinexpError(
            f"checkpoint {candidates[0]} is corrupt (not a readable Lightning checkpoint); fix: restore it, "
            f"or start a new run without resume="
        )
    (step, epoch), best = max(readable, key=lambda item: (item[0][0], item[1] == last, item[1] in hpc))
    if best == last:
        return last, None
    why = "is older" if read_position(last) is not None else ("is unreadable" if last.exists() else "does not exist")
    return best, f"{last} {why}; resuming from {best.name} at epoch {epoch + 1}, step {step}"


def resume_checkpoint(run_dir: str | Path) -> tuple[Path, str | None]:
    """(checkpoint to resume from, a note when it is not ``last.ckpt``), or a one-line error."""
    run_dir = Path(run_dir)
    found, note = find_checkpoint(run_dir)
    if found is None:
        last = run_dir / CHECKPOINT_DIR / LAST
        raise BinexpError(
            f"nothing to resume: {last} does not exist (the run stopped before its first checkpoint); "
            f"fix: start it again "
            f"without resume= and with hydra.run.dir=<a new folder> (or delete {run_dir} first)"
        )
    return found, note


def previous_record(run_dir: str | Path) -> dict:
    """The run's ``metrics.json`` as a dict ({} when missing or unreadable)."""
    from binexp.runs.record import read_record

    try:
        return read_record(run_dir)
    except (OSError, BinexpError):  # missing, a link, a FIFO, damaged: the run starts a fresh record
        return {}


def already_complete(record: dict, max_epochs) -> bool:
    """A completed run that the resume would not extend."""
    epochs = record.get("epochs")
    return (
        record.get("status") == "completed"
        and isinstance(epochs, int)
        and max_epochs is not None
        and 0 <= int(max_epochs) <= epochs
    )


def resume_args(flags: list[str], overrides: list[str]) -> tuple[list[str], list[str]]:
    """``resume=<run dir>`` -> the run's saved overrides + ``hydra.run.dir=<run dir>``.
    Extra overrides may only touch ``trainer.*`` (e.g. more epochs or another device)."""
    if "-m" in flags or "--multirun" in flags:
        raise BinexpError("resume= continues one run; fix: drop -m and resume each run directory on its own")
    value = [o for o in overrides if o.startswith("resume=")][-1].split("=", 1)[1].strip("'\"")
    extra = [o for o in overrides if not o.startswith("resume=")]
    bad = [o for o in extra if not o.lstrip("+~").startswith(("trainer.", "verbose="))]
    if bad:
        raise BinexpError(
            f"resume= continues a run with its saved config; only trainer.* overrides may be added, got {bad[0]}"
        )
    run_dir = Path(value).expanduser().resolve()
    if not run_dir.is_dir():
        raise BinexpError(
            f"cannot resume: no run directory at {run_dir}; "
            f"fix: pass resume=<a run directory under outputs/runs or outputs/multiruns>"
        )
    saved_file = run_dir / ".hydra" / "overrides.yaml"
    check_run_files(run_dir)
    if not saved_file.is_file():
        raise BinexpError(f"cannot resume: {run_dir} is not a binexp run directory (no .hydra/overrides.yaml)")
    from binexp.runs.allowlist import check_saved_overrides
    from binexp.safeio import read_yaml

    try:
        loaded = read_yaml(saved_file)
        if not isinstance(loaded, list) or not all(isinstance(o, (str, int, float, bool)) for o in loaded):
            raise TypeError(f"a {type(loaded).__name__}")
        saved = [str(o) for o in loaded]
    except BinexpError:
        raise
    except Exception as e:  # noqa: BLE001 - a damaged or hand-edited file
        raise BinexpError(
            f"cannot resume: {saved_file} is not a list of overrides ({_first_line(e)}); "
            f"fix: restore it from the original run"
        ) from None
    check_saved_overrides(
        [o for o in saved if not o.startswith(("hydra.run.dir=", "hydra.output_subdir="))], str(saved_file)
    )
    resume_checkpoint(run_dir)  # last.ckpt, or the newest readable checkpoint, or one line
    saved = [o for o in saved if not o.startswith(("resume=", "hydra.run.dir=", "hydra.output_subdir="))]
    keys = {o.split("=", 1)[0].lstrip("+~") for o in extra}
    saved = [o for o in saved if o.split("=", 1)[0].lstrip("+~") not in keys]
    quoted = quote_path(run_dir)
    new = saved + extra + [f"resume={quoted}", f"hydra.run.dir={quoted}", "hydra.output_subdir=null"]
    return flags, new
