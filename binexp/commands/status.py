"""``binexp status <sweep dir or run dir>...``: one line per job of a sweep (one line for a single
run directory): its overrides, its status (``completed``, ``running``, ``dead`` = recorded as
running, or not recorded at all, but no live process holds its lock, ``interrupted``, ``failed``,
``starting`` = its process holds the lock and is setting up, ``not started``), the epoch it
reached of how many, its best top-1 accuracy and, for running or dead jobs, when its
``metrics.json`` was last written.

The jobs are the sweep's job directories plus, when the sweep's ``multirun.yaml`` can be read,
the jobs Hydra's basic sweeper expands it into that have no directory yet (``not started``)."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

from binexp.errors import BinexpError
from binexp.runs.record import effective_status, is_held, read_record


def _expected_jobs(sweep_dir: Path) -> list[list[str]]:
    """The override list of every job of the sweep, in job-number order (empty if unknown)."""
    try:
        from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
        from hydra.core.override_parser.overrides_parser import OverridesParser

        from binexp.preflight import check_sweep_size
        from binexp.safeio import read_yaml

        where = sweep_dir / "multirun.yaml"
        saved: Any = read_yaml(where)
        task = [str(o) for o in saved["hydra"]["overrides"]["task"]]  # plain data, never resolved
        if any(o.startswith("hydra.sweeper") for o in task):
            return []
        parsed = OverridesParser.create().parse_overrides(task)
        check_sweep_size(parsed, str(where))
        return [job for batch in BasicSweeper.split_arguments(parsed, None) for job in batch]
    except BinexpError:  # a multirun.yaml that is a link, a FIFO, too big or asks for 10^8 jobs
        raise
    except Exception:  # noqa: BLE001 - no multirun.yaml, or a sweep another sweeper expanded: show the directories
        return []


UNFINISHED_FILE = "unfinished_jobs.json"  # written by binexp.launchers: jobs that ended without a result, queued


def unstarted_failures(sweep_dir: Path) -> dict[int, str]:
    """{job number: why it ended without a result} from the sweep's ``unfinished_jobs.json`` (read
    as bounded data, never followed through a link; {} when absent or not what binexp writes)."""
    from binexp.safeio import read_json_object

    where = sweep_dir / UNFINISHED_FILE
    if not os.path.lexists(where):
        return {}
    try:
        saved = read_json_object(where)
    except (OSError, BinexpError):
        return {}
    return {int(k): str(v) for k, v in saved.items() if str(k).isdigit() and isinstance(v, str)}


def job_dirs(sweep_dir: Path) -> dict[int, Path]:
    jobs: dict[int, Path] = {}
    for d in sorted(sweep_dir.iterdir()):
        num, sep, _ = d.name.partition("_")
        if d.is_dir() and sep and num.isdigit() and ((d / "metrics.json").exists() or (d / ".hydra").is_dir()):
            jobs.setdefault(int(num), d)
    return jobs


def _saved_overrides(run_dir: Path) -> list[str]:
    from binexp.runs.discovery import saved_overrides

    try:
        return saved_overrides(run_dir)
    except (OSError, BinexpError):
        return []


def _row(num: int | str, d: Path | None, overrides: list[str]) -> dict:
    row: dict[str, Any] = {
        "num": num,
        "overrides": overrides,
        "status": "not started",
        "epochs": None,
        "max_epochs": None,
        "best": None,
        "updated": None,
        "dir": str(d) if d else None,
    }
    if d is not None and (d / "metrics.json").exists():
        try:
            record = read_record(d)
        except (OSError, BinexpError) as e:  # a row of its own, then one error line
            record = {"status": "unreadable"}
            row["error"] = str(e)
        row.update(
            status=effective_status(d, record),
            epochs=record.get("epochs"),
            max_epochs=record.get("max_epochs"),
            best=record.get("best_val_acc1"),
        )
        if row["status"] in ("running", "dead"):
            row["updated"] = (d / "metrics.json").stat().st_mtime
    elif d is not None:  # Hydra made the directory; training has not written metrics.json (yet)
        row["status"] = "starting" if is_held(d) else "dead"  # its process holds the lock, or died
    return row


def job_rows(sweep_dir: Path) -> list[dict]:
    """One dict per job: num, overrides, status, epochs, max_epochs, best, updated."""
    expected = _expected_jobs(sweep_dir)
    dirs = job_dirs(sweep_dir)
    rows = [
        _row(num, dirs.get(num), expected[num] if num < len(expected) else _saved_overrides(dirs[num]))
        for num in sorted(set(range(len(expected))) | set(dirs))
    ]
    cancelled = unstarted_failures(sweep_dir)  # ended without a result while queued: no directory
    for row in rows:
        if row["dir"] is None and row["num"] in cancelled:
            row.update(status="failed", why=cancelled[row["num"]])
    return rows


def is_run_dir(d: Path) -> bool:
    """A single run's directory (``binexp train``'s output, or one job of a sweep)."""
    return (d / "metrics.json").is_file() or (d / ".hydra" / "overrides.yaml").is_file()


def _varying(rows: list[dict]) -> list[list[str]]:
    """Each job's overrides without those every job shares (all of them for a one-job sweep)."""
    lists = [r["overrides"] for r in rows]
    if len(lists) < 2:
        return lists
    shared = set.intersection(*(set(o) for o in lists))
    return [[o for o in ov if o not in shared] for ov in lists]


def format_rows(rows: list[dict]) -> list[str]:
    table = [("job", "overrides", "status", "epoch", "best acc1", "last update")]
    for row, ov in zip(rows, _varying(rows)):
        epoch = (
            "-"
            if row["epochs"] is None
            else f"{row['epochs']}/{row['max_epochs'] if row['max_epochs'] is not None else '?'}"
        )
        best = "-" if row["best"] is None else f"{row['best']:.2f}"
        updated = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(row["updated"])) if row["updated"] else ""
        table.append((str(row["num"]), " ".join(ov) or "(none)", row["status"], epoch, best, updated))
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in table]


def main(args: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="binexp status",
        description="one line per job of a sweep (or per run directory): overrides, status, epoch, best accuracy",
    )
    parser.add_argument(
        "sweep_dirs", nargs="+", help="sweep directories (outputs/multiruns/<date>_<time>) or run directories"
    )
    opts = parser.parse_args(args)
    unreadable: list[str] = []
    for i, name in enumerate(opts.sweep_dirs):
        sweep_dir = Path(name)
        if not sweep_dir.is_dir():
            raise BinexpError(f"no sweep directory at {sweep_dir}; fix: pass a directory under outputs/multiruns")
        rows = job_rows(sweep_dir)
        if not rows and is_run_dir(sweep_dir):  # one run: its line, named by its directory
            rows = [_row(sweep_dir.name, sweep_dir, _saved_overrides(sweep_dir))]
        if not rows:
            raise BinexpError(
                f"{sweep_dir} holds no sweep jobs (no <num>_<overrides>/ job directories, no multirun.yaml); "
                f"fix: pass a sweep directory"
            )
        if len(opts.sweep_dirs) > 1:
            print(("\n" if i else "") + f"{sweep_dir}:")
        print("\n".join(format_rows(rows)))
        unreadable.extend(r["error"] for r in rows if r.get("error"))
    if unreadable:  # the table is printed, but a damaged job directory is an error, not a quiet row
        more = f" (and {len(unreadable) - 1} more)" if len(unreadable) > 1 else ""
        raise BinexpError(f"status: {unreadable[0]}{more}; fix: restore it, or remove that job directory")
    return 0
