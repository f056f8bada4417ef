"""Whether a run is alive: a lock that dies with the process.

The training process (rank 0) holds an exclusive ``fcntl`` lock on ``<run dir>/.lock`` for as
long as it runs. The kernel drops the lock when the process ends, however it ends (SIGKILL,
OOM, a node lost), so a reader that can take the lock knows that nobody is running the run: a
``metrics.json`` that still says ``running`` then belongs to a dead run.

``effective_status(run_dir, record)`` is what ``binexp report`` and ``binexp status`` show:
the recorded status, except ``running`` becomes ``dead`` when the lock is free. The record itself,
``metrics.json``, is read through :func:`read_record` only."""

from __future__ import annotations

import os
from pathlib import Path

from binexp.errors import BinexpError
from binexp.safeio import read_json_object

LOCK_NAME = ".lock"


class RunLock:
    """Hold ``<run dir>/.lock`` exclusively until :meth:`release` (or process exit)."""

    def __init__(self, run_dir: str | Path) -> None:
        self.path = Path(run_dir) / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> bool:
        """Take the lock; False if another live process holds it."""
        import fcntl

        from binexp.safeio import open_regular

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = open_regular(self.path, os.O_RDWR | os.O_CREAT)  # never through a link (it would truncate the target)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            import fcntl

            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def is_held(run_dir: str | Path) -> bool:
    """True while a live process holds the run's lock (no lock file: not held)."""
    import fcntl

    from binexp.errors import BinexpError
    from binexp.safeio import open_regular

    path = Path(run_dir) / LOCK_NAME
    try:
        fd = open_regular(path, os.O_RDONLY)
    except (OSError, BinexpError):  # none, or a link / FIFO: no live binexp process holds it
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def effective_status(run_dir: str | Path, record: dict) -> str:
    """The recorded status, with ``running`` turned into ``dead`` when no process holds the lock."""
    status = str(record.get("status", "unknown"))
    if status == "running" and not is_held(run_dir):
        return "dead"
    return status


_NUMBER_SUFFIXES = ("acc1", "acc5", "loss", "epochs", "step", "_mean", "_per_weight", "_s", "_kib")


def read_record(run_dir: str | Path) -> dict:
    """A run's ``metrics.json``, checked to be the kind of record binexp writes (numbers where
    binexp writes numbers, a list of strings as overrides), or a one-line :class:`BinexpError`.
    ``FileNotFoundError`` passes through."""
    path = Path(run_dir) / "metrics.json"
    record = read_json_object(path)
    for key, value in record.items():
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if key.endswith(_NUMBER_SUFFIXES) and value is not None and not number:
            raise BinexpError(f"{path}: {key} is {str(value)[:40]!r}, not a number")
    for key in ("status", "name"):
        if record.get(key) is not None and not isinstance(record[key], str):
            raise BinexpError(f"{path}: {key} is not a string")
    overrides = record.get("overrides")
    if overrides is not None and not (isinstance(overrides, list) and all(isinstance(o, str) for o in overrides)):
        raise BinexpError(f"{path}: overrides is not a list of strings")
    return record
