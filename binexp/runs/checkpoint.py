"""Every checkpoint binexp reads goes through here: find it, load it without running code, and
rebuild a network from the run config saved inside it.

A checkpoint is a pickle; ``torch.load(..., weights_only=True)`` only rebuilds tensors and
plain containers and refuses any other global, so a checkpoint from a colleague, a download or
a run directory cannot run code. Lightning's own load on ``resume=`` uses the same function
(:class:`SafeCheckpointIO`, passed to the Trainer), and its saves are atomic: written to a
temporary file next to the target, fsynced, then renamed over it.

What binexp's checkpoints hold, and so all that must load: tensors (``torch._utils.
_rebuild_tensor_v2`` and the storages), ``collections.OrderedDict``, dicts, lists, numbers,
strings and None (hyper_parameters is the resolved run config as plain containers). Every
one of these is already in torch's default weights-only allow-list, so :data:`SAFE_GLOBALS`
is empty; anything added to a checkpoint later that needs a global must be named there."""

from __future__ import annotations

import contextlib
import os
import zipfile
from pathlib import Path
from typing import Any

from binexp.errors import BinexpError
from binexp.runs.layout import CHECKPOINT_DIR, LAST
from binexp.safeio import atomic_write

# Globals beyond torch's default weights-only set that binexp's own checkpoints need: none.
SAFE_GLOBALS: tuple = ()

# While a run starts (:func:`read_once`), each checkpoint file is read once: ``resume=`` weighs
# every candidate (last.ckpt, the best epoch, hpc checkpoints) before Hydra starts and again inside
# the job, the pre-flight checks a teacher that the job then loads, and Lightning restores the
# chosen one. A file is known by its identity on disk, so one rewritten since (an atomic save
# renames a new file over it) is read again. None: no start under way, nothing is kept.
_READ: dict[tuple, dict] | None = None

# what each option is called on the command line, and what it expects
_HOW = {
    "init_from": "pass init_from=<run directory with checkpoints/last.ckpt, or a .ckpt file>",
    "distill.teacher": "pass distill.teacher=<run directory with checkpoints/last.ckpt, or a .ckpt file>",
    "resume": "pass resume=<a run directory under outputs/runs or outputs/multiruns>",
    "export": "pass a FleXOR run directory or its .ckpt file",
}


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def locate(source: str | Path, option: str) -> Path:
    """A ``.ckpt`` file, or a run directory's ``checkpoints/last.ckpt``; a one-line error that
    names ``option`` (init_from, distill.teacher, resume, export) when there is none."""
    path = Path(source).expanduser()
    if path.is_dir():
        path = path / CHECKPOINT_DIR / LAST
    if not path.is_file():
        raise BinexpError(
            f"{option}: no checkpoint at {path}; fix: {_HOW.get(option, 'pass a run directory or a .ckpt file')}"
        )
    return path.resolve()


def _unsafe_global(e: BaseException) -> str | None:
    """The global a weights-only load refused, e.g. ``posix.system``, or None."""
    import re

    m = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(e)) or re.search(r"GLOBAL ([\w.]+)", str(e))
    return m.group(1) if m else None


def _corrupt(path: Path, option: str, what: str, reason: str) -> str:
    if option == "export":
        return f"export: cannot rebuild a run from {path} ({reason}); fix: pass an intact binexp checkpoint"
    if option == "resume":
        return f"resume: {what} {path} is corrupt ({reason}); fix: restore it, or start a new run without resume="
    return f"{option}: {what} {path} is corrupt ({reason}); fix: point {option} at an intact checkpoint"


def check_archive(path: Path, option: str, what: str = "checkpoint") -> None:
    """Before ``torch.load``: a regular file (not a FIFO or device) whose zip entries are stored
    uncompressed, as ``torch.save`` writes them, so that what loading allocates is bounded by the
    file's own size (a 17 MB deflated entry can inflate to 4 GB)."""
    import stat

    try:
        st = os.stat(path)
    except OSError as e:
        raise BinexpError(_corrupt(path, option, what, e.strerror or str(e))) from None
    if not stat.S_ISREG(st.st_mode):
        raise BinexpError(_corrupt(path, option, what, "not a regular file (a FIFO, device or folder)"))
    try:
        with zipfile.ZipFile(path) as archive:
            entries = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return  # not a zip: load() says so in its own words
    packed = [e.filename for e in entries if e.compress_type != zipfile.ZIP_STORED]
    total = sum(e.file_size for e in entries)
    if packed or total > st.st_size:
        raise BinexpError(
            f"{option}: {what} {path} holds compressed entries ({(packed or ['?'])[0]}: {total:,} bytes unpacked "
            f"from a {st.st_size:,}-byte file), which torch.save never writes (refused before loading); "
            f"fix: use a checkpoint written by binexp train"
        )


def _identity(path: Path) -> tuple | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


@contextlib.contextmanager
def read_once():
    """Within this block each checkpoint file is read from disk at most once (see :data:`_READ`);
    :func:`forget` drops what was read once the run has what it needs."""
    global _READ
    outer = _READ
    _READ = {} if outer is None else outer
    try:
        yield
    finally:
        _READ = outer


def forget(keep: str | Path | None = None) -> None:
    """Drop the checkpoints read during the start, except ``keep`` (the one Lightning restores
    next, which :class:`SafeCheckpointIO` then takes out)."""
    if _READ is None:
        return
    kept = _identity(Path(keep)) if keep is not None else None
    for key in [k for k in _READ if k != kept]:
        del _READ[key]


def load(path: str | Path, option: str, what: str = "checkpoint", *, take: bool = False) -> dict:
    """Load a binexp/Lightning checkpoint with ``weights_only=True`` onto the CPU.

    Raises a one-line :class:`BinexpError` (naming ``option``) for a file that is not a torch
    archive, is truncated, lacks ``state_dict``, or asks to build any object outside the
    allow-list (the one thing a pickle can use to run code). During :func:`read_once` a file
    already read is not read again (``take``: and is then dropped)."""
    path = Path(path)
    key = _identity(path) if _READ is not None else None
    if key is not None and _READ is not None and key in _READ:
        return _READ.pop(key) if take else _READ[key]
    ckpt = _load(path, option, what)
    if key is not None and _READ is not None and not take:
        _READ[key] = ckpt
    return ckpt


def _load(path: Path, option: str, what: str) -> dict:
    check_archive(path, option, what)
    try:
        if not zipfile.is_zipfile(path):
            raise ValueError("not a torch zip archive")
        import torch  # here, not at import: `binexp train` imports this module before it knows it reads one

        with torch.serialization.safe_globals(list(SAFE_GLOBALS)):
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file is one line
        bad = _unsafe_global(e)
        if bad is not None:
            raise BinexpError(
                f"{option}: {what} {path} asks to build {bad}, which a checkpoint never needs (refused, "
                f"nothing was run); fix: use a checkpoint written by binexp train from a source you trust"
            ) from None
        raise BinexpError(_corrupt(path, option, what, _first_line(e))) from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise BinexpError(_corrupt(path, option, what, "no state_dict inside"))
    return ckpt


def run_config(ckpt: dict, path: Path, option: str) -> tuple[dict, int]:
    """The resolved run config and class count saved in a binexp checkpoint."""
    hp = ckpt.get("hyper_parameters") or {}
    config = hp.get("run_config") or {}
    if (
        not isinstance(config, dict)
        or "model" not in config
        or "quantizer" not in config
        or not isinstance(hp.get("num_classes"), int)
    ):
        raise BinexpError(f"{option}: {path} has no saved binexp config; fix: use a checkpoint written by binexp train")
    return config, hp["num_classes"]


# ------------------------------------------------------------------------------------------
# Lightning's checkpoint IO: the same safe load on resume, atomic saves


def safe_checkpoint_io():
    """A :class:`lightning.fabric.plugins.TorchCheckpointIO` whose saves are atomic in the
    target's own directory (Lightning's go through a temporary file in the system temp dir,
    which is not atomic across filesystems) and whose loads are :func:`load`."""
    from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

    class SafeCheckpointIO(TorchCheckpointIO):
        def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options=None) -> None:
            if storage_options is not None:
                raise TypeError("SafeCheckpointIO takes no storage_options")
            import io

            # serialised in memory first (as Lightning does): a full disk then surfaces as the
            # OSError of the file write, not as torch's RuntimeError from inside its zip writer
            import torch

            buffer = io.BytesIO()
            torch.save(checkpoint, buffer)
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            atomic_write(path, lambda f: f.write(buffer.getbuffer()))

        def load_checkpoint(self, path, map_location=None, weights_only=None) -> dict[str, Any]:
            return load(path, "resume", take=True)

    return SafeCheckpointIO()


__all__ = [
    "SAFE_GLOBALS",
    "forget",
    "load",
    "locate",
    "read_once",
    "run_config",
    "safe_checkpoint_io",
]
