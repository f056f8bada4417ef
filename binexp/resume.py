"""Which checkpoint ``resume=<run dir>`` continues from, and whether there is anything to do.

``checkpoints/last.ckpt`` when it is readable; otherwise (a run killed before its first
``last.ckpt``, or during its write) the newest readable checkpoint in ``checkpoints/`` by global
step. Every epoch's data order and augmentation derive from (seed, epoch), so resuming from any
of them ends in the same network as the uninterrupted run."""

from __future__ import annotations

from pathlib import Path

from binexp.checkpoint import CHECKPOINT_DIR, LAST, load
from binexp.errors import BinexpError


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
    return best, f"{last} {why}; resuming from {best.name} (epoch {epoch}, step {step})"


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
    from binexp.safeio import read_record

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
