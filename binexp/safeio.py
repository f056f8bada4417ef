"""Reading and writing inside a run directory that may come from a stranger: never through a
symbolic link, only regular files (a FIFO or ``/dev/zero`` would hang or fill memory), and
never more bytes than a bound checked before reading.

``O_NOFOLLOW`` refuses a link in the last component of the path; ``O_NONBLOCK`` keeps the
``open`` of a FIFO from waiting for a writer, and ``fstat`` on the opened descriptor (not the
path, which could change in between) decides whether it is a regular file."""

from __future__ import annotations

import contextlib
import logging
import os
import stat
from pathlib import Path

from binexp.errors import BinexpError

# what binexp reads from a run directory, at most (a metrics.json of a 10 000-epoch run is ~3 MB)
MAX_JSON_BYTES = 64 * 2**20
MAX_YAML_BYTES = 2**20

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)


def open_regular(path: str | Path, flags: int = os.O_RDONLY, mode: int = 0o644, what: str = "") -> int:
    """A file descriptor of ``path`` opened with ``flags``, only if it is a regular file and not a
    symbolic link; else a one-line :class:`BinexpError` (``FileNotFoundError`` passes through)."""
    name = what or str(path)
    try:
        fd = os.open(path, flags | _NOFOLLOW | _NONBLOCK, mode)
    except OSError as e:
        if os.path.islink(path):
            raise BinexpError(
                f"{name} is a symbolic link; binexp never reads or writes a run's files through a link "
                f"(fix: replace it by the file itself)"
            ) from None
        if isinstance(e, FileNotFoundError):
            raise
        raise BinexpError(f"cannot open {name} ({e.strerror or e})") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise BinexpError(
                f"{name} is not a regular file (a FIFO, device or folder); fix: replace it by the file itself"
            )
        if _NONBLOCK:
            os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_bytes(path: str | Path, limit: int, what: str = "") -> bytes:
    """The bytes of a regular file that is at most ``limit`` bytes long (checked before reading,
    and again while reading, for a file that grows)."""
    name = what or str(path)
    fd = open_regular(path, os.O_RDONLY, what=name)
    try:
        size = os.fstat(fd).st_size
        if size > limit:
            raise BinexpError(
                f"{name} is {size:,} bytes, more than the {limit:,} binexp reads from such a file; "
                f"fix: check that it is the file binexp wrote"
            )
        chunks, total = [], 0
        while chunk := os.read(fd, min(1 << 20, limit + 1 - total)):
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:
                raise BinexpError(f"{name} grew beyond {limit:,} bytes while being read")
        return b"".join(chunks)
    finally:
        os.close(fd)


def read_text(path: str | Path, limit: int, what: str = "") -> str:
    """:func:`read_bytes` decoded as UTF-8 (a binary file is a one-line error)."""
    data = read_bytes(path, limit, what)
    try:
        return data.decode()
    except UnicodeDecodeError:
        raise BinexpError(f"{what or path} is not UTF-8 text (binary data?)") from None


def _check_kind(path: str | Path, folder: bool, what: str) -> None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    name = what or str(path)
    if stat.S_ISLNK(st.st_mode):
        raise BinexpError(
            f"{name} is a symbolic link; binexp never reads or writes a run's files through a link "
            f"(fix: replace it by the {'folder' if folder else 'file'} itself, or choose another)"
        )
    if folder and not stat.S_ISDIR(st.st_mode):
        raise BinexpError(f"{name} is a file, not a folder; fix: choose a folder")
    if not folder and not stat.S_ISREG(st.st_mode):
        raise BinexpError(
            f"{name} is not a regular file (a FIFO, device or folder); fix: replace it by the file itself"
        )


def check_regular_or_absent(path: str | Path, what: str = "") -> None:
    """``path`` does not exist, or is a regular file (not a link, FIFO, device or folder)."""
    _check_kind(path, False, what)


def check_real_dir(path: str | Path, what: str = "") -> None:
    """``path`` does not exist, or is a folder that is not a symbolic link."""
    _check_kind(path, True, what)


class NoFollowFileHandler(logging.FileHandler):
    """``logging.FileHandler`` for ``train.log`` that appends only to a regular file, never
    through a symbolic link (Hydra's job logging uses it: ``conf/train.yaml``)."""

    def _open(self):
        fd = open_regular(self.baseFilename, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        return os.fdopen(fd, "a", encoding=self.encoding, errors=self.errors)


def read_json_object(path: str | Path, what: str = "") -> dict:
    """A JSON object from a bounded regular file; any other content is a one-line error."""
    import json

    name = what or str(path)
    text = read_text(path, MAX_JSON_BYTES, name)
    try:
        data = json.loads(text)
    except RecursionError:
        raise BinexpError(f"{name} is nested too deeply to be what binexp wrote") from None
    except ValueError as e:
        raise BinexpError(f"{name} is not JSON ({str(e).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise BinexpError(f"{name} holds a JSON {type(data).__name__}, not an object")
    return data


# metrics.json fields read as numbers by report, status, plot and resume: a number or null
def read_yaml(path: str | Path, what: str = "") -> object:
    """A small YAML file read as plain data: bounded in size, and refused if it uses anchors or
    aliases (binexp never writes them; a few lines of nested aliases expand to billions of
    nodes in OmegaConf: the "billion laughs")."""
    import yaml

    name = what or str(path)
    text = read_text(path, MAX_YAML_BYTES, name)
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
                raise BinexpError(f"{name} uses YAML anchors or aliases, which binexp never writes; fix: restore it")
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise BinexpError(f"{name} is not valid YAML ({str(e).splitlines()[0]})") from None


# ------------------------------------------------------------------------------------------
# atomic writes: a file is replaced whole or not at all


def atomic_write(path: str | Path, write) -> None:
    """Call ``write(file)`` on ``<path>.tmp-<pid>`` in the same directory, fsync, rename over
    ``path``. On any error the temporary file is removed and ``path`` is untouched."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    try:  # the rename itself survives a crash once the directory entry is on disk
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass


def remove_stale_temps(folder: str | Path) -> list[Path]:
    """Remove ``.<name>.tmp-<pid>`` files that :func:`atomic_write` of a process that no longer
    exists left behind (killed mid-write); returns what was removed."""
    import re

    removed = []
    for p in Path(folder).glob(".*.tmp-*"):
        m = re.fullmatch(r"\..+\.tmp-(\d+)", p.name)
        if not m or int(m.group(1)) == os.getpid():
            continue
        try:
            os.kill(int(m.group(1)), 0)
            continue  # its writer still runs
        except ProcessLookupError:
            pass
        except PermissionError:
            continue
        try:
            p.unlink()
            removed.append(p)
        except OSError:
            pass
    return removed


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write(path, lambda f: f.write(text.encode()))
