"""The runs under a set of directories: each run directory's ``metrics.json`` (or, for a run
that stopped before training, its ``.hydra/overrides.yaml``), read as data, never executed.
``binexp report``, ``binexp plot`` and ``binexp status`` read runs through here."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from binexp.errors import BinexpError
from binexp.runs.record import effective_status, read_record

FOLDED = {"seed"}  # keys folded into mean ± std, never columns
# keys that say where things are or how they are shown, never what was run: no default column
NOT_COLUMNS = {"resume", "verbose", "data.root", "trainer.enable_progress_bar"}


@dataclass
class Run:
    path: Path
    metrics: dict
    overrides: dict

    @property
    def status(self) -> str:
        return effective_status(self.path, self.metrics)


def parse_overrides(items: list[str] | None) -> dict:
    out = {}
    for item in items or []:
        if "=" in item:
            k, v = item.split("=", 1)
            out[k.lstrip("+~")] = v.lower() if v in ("True", "False") else v  # a sweep's jobs record False, a run false
    return out


def natural_key(path: Path) -> list:
    """Sort key reading digit runs as numbers: job ``2`` before job ``10``, so a sweep's rows keep
    the order of its ``experiment=a,b,...`` list (a table's paper order)."""
    return [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", str(path)) if t]


def _reason(e: Exception, path: Path) -> str:
    """Why a metrics.json could not be read, without repeating its path."""
    return str(e).removeprefix(str(path)).lstrip(": ")


def saved_overrides(run_dir: Path) -> list[str]:
    """The run's ``.hydra/overrides.yaml`` as plain strings: read as YAML data (bounded, no
    aliases), never resolved, so a ``${oc.env:...}`` in it stays text."""
    from binexp.safeio import read_yaml

    where = run_dir / ".hydra" / "overrides.yaml"
    loaded = read_yaml(where)
    if not isinstance(loaded, list):
        raise BinexpError(f"{where} is not a list of overrides; fix: restore it, or remove that run directory")
    return [str(o) for o in loaded]


def find_runs(dirs: list[str]) -> list[Run]:
    runs = []
    for d in dirs:
        root = Path(d).expanduser()
        if not root.exists():
            raise BinexpError(
                f"report: {root} does not exist; fix: pass run or sweep directories (e.g. outputs/multiruns/<sweep>)"
            )
        candidates = {p.parent for p in root.rglob("metrics.json")} | {
            p.parent.parent for p in root.rglob(".hydra/overrides.yaml")
        }
        for run_dir in sorted(candidates, key=natural_key):  # a sweep's jobs 0, 1, ..., 10: the sweep's order
            if run_dir.name == "tensorboard":
                continue
            mfile = run_dir / "metrics.json"
            if os.path.lexists(mfile):
                try:
                    metrics = read_record(run_dir)
                except (
                    OSError,
                    BinexpError,
                ) as e:  # truncated, binary, not an object: a row of its own, and an error line
                    metrics = {"status": "unreadable", "error": f"metrics.json: {_reason(e, mfile)}"}
            else:
                saved = saved_overrides(run_dir)
                metrics = {"status": "no metrics", "overrides": saved, "error": "stopped before training started"}
            runs.append(Run(run_dir, metrics, parse_overrides(metrics.get("overrides", []))))
    if not runs:
        raise BinexpError(
            f"report: no runs (metrics.json) under {', '.join(dirs)}; fix: pass the directory of a run or sweep"
        )
    return runs


def differing_keys(runs: list[Run]) -> list[str]:
    keys: list[str] = []
    for r in runs:
        for k in r.overrides:
            if k not in keys and k not in FOLDED and k not in NOT_COLUMNS and not k.startswith("hydra."):
                keys.append(k)
    return [k for k in keys if len({r.overrides.get(k) for r in runs}) > 1]
