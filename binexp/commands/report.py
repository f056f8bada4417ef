"""``binexp report <dir>...``: every run under the given run or sweep directories as one table
(:mod:`binexp.analysis.report`), optionally with its plots."""

from __future__ import annotations

import argparse
from pathlib import Path

from binexp.analysis.report import COLUMN_NAMES, check_keys, group, plot, render, render_alpha, table_records
from binexp.errors import BinexpError
from binexp.runs.discovery import differing_keys, find_runs


def main(args: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="binexp report", description=__doc__.splitlines()[0])
    parser.add_argument("dirs", nargs="+", help="run or sweep directories")
    parser.add_argument(
        "--by", default=None, help="comma-separated keys for the rows (default: the overrides that differ)"
    )
    parser.add_argument(
        "--metric",
        default="best_val_acc1",
        help="metrics.json key to report (default best_val_acc1; val_acc1 = last epoch)",
    )
    parser.add_argument("--format", default="md", choices=("md", "csv", "latex"))
    parser.add_argument("--plot", default=None, metavar="DIR", help="write acc_vs_bits.png and val_curves.png here")
    parser.add_argument(
        "--columns",
        default="",
        help="extra columns, comma-separated: size (model KiB at the stored bits), "
        "huffman (Huffman bits/weight of the trained sign kernels), alpha (RBNN's final mean alpha), "
        "worst (among the row's runs, seeds and every setting the row folds: the lowest accuracy, "
        "or the highest loss or time)",
    )
    parser.add_argument("--alpha", action="store_true", help="also print RBNN's final alpha per layer (alpha_final)")
    ns = parser.parse_args(args)
    runs = find_runs(ns.dirs)
    by = [k for k in ns.by.split(",") if k] if ns.by else differing_keys(runs)
    if not by:
        by = ["name"]
    check_keys(runs, by if ns.by else [], ns.metric)
    rows = group(runs, by)
    records = table_records(rows, by, ns.metric)
    alpha = render_alpha(records, rows, by) if ns.alpha else None
    columns = tuple(c for c in ns.columns.split(",") if c)
    unknown = [c for c in columns if c not in COLUMN_NAMES]
    if unknown:
        raise BinexpError(f"report: unknown --columns entry {unknown[0]!r}; choose from: {', '.join(COLUMN_NAMES)}")
    print(render(records, by, ns.metric, ns.format, columns))
    if alpha:
        print("\nα final per layer\n" + alpha)
    if ns.plot:
        for path in plot(records, rows, by, ns.metric, Path(ns.plot)):
            print(f"wrote {path}" if isinstance(path, Path) else path)
    failed = sum(1 for r in records if not r["status"].startswith("completed"))
    if failed and ns.format == "md":
        print(f"\n{failed} row(s) did not complete; see their status.")
    unreadable = [r for r in runs if r.status == "unreadable"]
    if unreadable:  # the table is printed, but a damaged run directory is an error, not a quiet row
        more = f" (and {len(unreadable) - 1} more)" if len(unreadable) > 1 else ""
        raise BinexpError(
            f"report: {unreadable[0].path / 'metrics.json'} is unreadable{more} "
            f"({unreadable[0].metrics['error'].removeprefix('metrics.json: ')}); "
            f"fix: restore it, or remove that run directory"
        )
    unresolved = [(r, o) for r in runs for o in r.metrics.get("overrides") or [] if "${" in str(o)]
    if unresolved:  # shown as written above; never resolved from a run directory, as resume= refuses it
        (run, override), others = unresolved[0], len({id(r) for r, _ in unresolved}) - 1
        raise BinexpError(
            f"report: {run.path} recorded the override {override!r}, an interpolation binexp never resolves "
            f"from a run directory (its table cell shows the text){f' (and {others} more runs)' if others else ''}; "
            f"fix: rerun with a plain value, or remove that run directory"
        )
    return 0
