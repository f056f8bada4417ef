"""What a run directory is: its files and folders, the checks that a new one is new and
writable, and the ``mkdir`` by which a ``binexp train`` process claims its own."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from binexp.errors import BinexpError
from binexp.runs import NEW_RUN_DIR_ENV

CHECKPOINT_DIR = "checkpoints"  # <run dir>/checkpoints: last.ckpt and the best epoch
LAST = "last.ckpt"


# what a run directory holds that binexp opens by name: each a regular file (or absent), each
# folder a real folder, so nothing is read or written through a link, a FIFO or a device
RUN_FILES = (".lock", "train.log", "metrics.json", "summary.txt", "summary.json", ".hydra/overrides.yaml")
RUN_FOLDERS = (".hydra", "checkpoints", "tensorboard", "figures")


def check_run_files(run_dir: Path) -> None:
    from binexp.safeio import check_real_dir, check_regular_or_absent

    for name in RUN_FOLDERS:
        check_real_dir(run_dir / name)
    for name in RUN_FILES:
        check_regular_or_absent(run_dir / name)


def quote_path(path: Path) -> str:
    """A path as a quoted Hydra override value (run dirs may hold '=' and ',')."""
    return "'" + str(path).replace("\\", "\\\\").replace("'", "\\'") + "'"


def claim_output_dir(default_dir: Callable[[str], str], multirun: bool, explicit: Path | None) -> list[str]:
    """Make this process's output directory before Hydra writes ``.hydra/`` into it, with a
    ``mkdir`` that only one process can win, so that two ``binexp train`` started in the same
    second never share a directory (nor overwrite each other's ``.hydra/`` files):

    * the default ``outputs/runs/<time>_<name>`` (``outputs/multiruns/<time>`` for a sweep) is
      made here, the first free one of ``<dir>``, ``<dir>_2``, ``<dir>_3``... and handed to Hydra
      as ``hydra.run.dir`` (``hydra.sweep.dir``), so DDP children join the same one;
    * an explicit ``hydra.run.dir`` is claimed by making its ``.hydra/`` folder: the loser of a
      race gets one line (an explicit sweep directory is shared on purpose: a re-run continues it).
    ``default_dir(key)`` is the composed value of ``key`` (the default output directory).
    Returns the overrides to add."""
    if explicit is not None:
        if not multirun:
            note_new_run_dir(explicit)
            explicit.mkdir(parents=True, exist_ok=True)
            try:
                (explicit / ".hydra").mkdir()
            except FileExistsError:
                raise BinexpError(
                    f"{explicit} is being started by another binexp train; fix: choose another hydra.run.dir"
                ) from None
        return []
    key = "hydra.sweep.dir" if multirun else "hydra.run.dir"
    wanted = Path(default_dir(key))
    if not multirun:
        note_new_run_dir(wanted)
    wanted.parent.mkdir(parents=True, exist_ok=True)
    for n in range(1, 1000):
        candidate = wanted if n == 1 else wanted.with_name(f"{wanted.name}_{n}")
        try:
            candidate.mkdir()
        except FileExistsError:
            continue
        if not multirun and n > 1:
            os.environ[NEW_RUN_DIR_ENV] = str(candidate.absolute())  # its parent existed already
        return [f"{key}={quote_path(candidate)}"]
    raise BinexpError(f"no free output directory next to {wanted}; fix: set {key}=<a new folder>")


def note_new_run_dir(d: Path) -> None:
    """Tell the run the topmost folder that making ``d`` creates (``d`` itself, or a new
    ``outputs/``...), so that a run failed by bad input can remove exactly what this command made."""
    d = d.absolute()
    top = None
    for folder in (d, *d.parents):
        if folder.exists():
            break
        top = folder
    os.environ[NEW_RUN_DIR_ENV] = str(top) if top is not None else ""


def check_writable(d: Path) -> None:
    """The output folder (or the nearest existing folder above it) can be written."""
    probe = d.absolute()
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise BinexpError(
            f"{probe} is a file, not a folder; fix: choose another output directory (hydra.run.dir / hydra.sweep.dir)"
        )
    if not os.access(probe, os.W_OK | os.X_OK) or not _can_make_folder(probe):
        raise BinexpError(
            f"cannot write to {probe} (read-only or no permission); fix: choose a writable output directory "
            f"with hydra.run.dir=<folder> (or run from a writable folder)"
        )


def _can_make_folder(parent: Path) -> bool:
    """A folder can be created in ``parent`` (tried, then removed): ``os.access`` says yes for
    /proc and /sys, where nothing can be created."""
    import tempfile

    try:
        before = os.stat(parent)
        os.rmdir(tempfile.mkdtemp(prefix=".binexp-probe-", dir=parent))
        os.utime(parent, ns=(before.st_atime_ns, before.st_mtime_ns))  # as it was: the probe left no trace
    except OSError:
        return False
    return True


def check_new_run_dir(d: Path) -> None:
    """An explicit ``hydra.run.dir`` is new, or an empty folder: never a run (continue that
    with resume=) and never a folder of the user's own files."""
    if (d / "metrics.json").exists() or (d / "checkpoints").exists():
        raise BinexpError(f"{d} already holds a run; fix: continue it with resume={d}, or choose another hydra.run.dir")
    if d.is_dir() and any(d.iterdir()):
        raise BinexpError(
            f"{d} is an existing folder with other files in it; fix: choose a new or empty hydra.run.dir "
            f"(a run writes several files and folders there)"
        )
