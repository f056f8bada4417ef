"""``binexp report <dir>...``: every run under the given run or sweep directories as one table.

It reads each run's ``metrics.json`` (and nothing else, except TensorBoard events for
``--plot``): one row per configuration — the overrides that differ between runs, or ``--by`` —
with seeds folded into mean ± std (n), and, where the run's experiment has a paper value in its
``meta``, the paper's number and our difference beside it — only for runs that are that
experiment (its composed config equals the preset's except result-neutral keys, see
``binexp.analysis.paper``), else "—" and why.
Runs that failed, were interrupted, are still running or died (``running`` with nobody holding
the run's lock) get rows of their own with that status; none is dropped. Columns for what other
parts of binexp record (model size, Huffman bits per weight, RBNN's final α) appear when present."""

from __future__ import annotations

import csv
import io
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

from binexp.analysis import paper as paper_check
from binexp.errors import BinexpError
from binexp.runs.discovery import Run, find_runs

PAPER_KEYS = paper_check.TOP1_KEYS
RECORD_METRICS = ("best_val_acc1", "val_acc1", "val_acc5", "val_loss", "train_acc1", "train_loss")
# optional metrics.json keys -> (record key, column title); shown only when some run has them
EXTRA_COLUMNS = {
    "model_size_kib": "size (KiB)",
    "huffman_bits_per_weight": "Huffman bits/w",
    "alpha_final_mean": "α final",
}
# statistics of the row's runs' own --metric values: "worst" (over the row's runs, i.e. over seeds
# and every setting the row folds, e.g. BiBench's eight recipes with --by quantizer: the lowest
# accuracy, or the highest value of any other metric: loss, wall_time_s)
STAT_COLUMNS = {"worst": "worst"}
COLUMN_NAMES = {
    "size": "model_size_kib",
    "huffman": "huffman_bits_per_weight",
    "alpha": "alpha_final_mean",
    "worst": "worst",
}  # --columns


@dataclass
class Row:
    key: tuple
    runs: list[Run] = field(default_factory=list)
    status: str = "completed"


def value_of(run: Run, key: str):
    if key in run.overrides:
        return run.overrides[key]
    node = run.metrics
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return composed_value(run, key)
        node = node[part]
    return node


def composed_value(run: Run, key: str):
    """A model.* / quantizer.* value the run did not override: its composed config's (the
    preset's N_in of an ``experiment=`` sweep), so rows never read ``None`` for a set value."""
    if not key.startswith(("model.", "quantizer.")) or "overrides" not in run.metrics:
        return None
    try:
        value = paper_check.composed(run.metrics).get(key)
    except BinexpError:
        return None
    return None if value is None or (isinstance(value, str) and "${" in value) else str(value)


def paper_value(run: Run, metric: str = "best_val_acc1"):
    return paper_check.check(run.metrics, metric)[0]


def metric_names(runs: list[Run]) -> list[str]:
    """The keys --metric accepts: numeric (or not yet set) top-level entries of any metrics.json."""
    names = set(RECORD_METRICS)
    for r in runs:
        names |= {
            k for k, v in r.metrics.items() if v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))
        }
    return sorted(names)


def check_keys(runs: list[Run], by: list[str], metric: str) -> None:
    """Unknown --metric or --by: one line listing what exists (a typo must not print a table of –)."""
    names = metric_names(runs)
    if metric not in names:
        raise BinexpError(f"report: unknown --metric {metric!r}; choose one of: {', '.join(names)}")
    for key in by:
        if not any(value_of(r, key) is not None for r in runs):
            valid = {k for r in runs for k in r.overrides if not k.startswith("hydra.")}
            valid |= {
                k
                for r in runs
                for k, v in r.metrics.items()
                if isinstance(v, (str, int, float)) and not isinstance(v, bool)
            }
            raise BinexpError(
                f"report: unknown --by key {key!r}: no run has it; choose from: {', '.join(sorted(valid))}"
            )


def _number(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def extra_values(run: Run) -> dict:
    m = run.metrics
    alpha = m.get("alpha_final")
    alphas = [float(v) for v in alpha.values() if _number(v) is not None] if isinstance(alpha, dict) else []
    return {
        "model_size_kib": _number(m.get("model_size_kib")),
        "huffman_bits_per_weight": _number(m.get("huffman_bits_per_weight")),
        "alpha_final_mean": statistics.fmean(alphas) if alphas else None,
    }


def group(runs: list[Run], by: list[str]) -> list[Row]:
    rows: dict[tuple, Row] = {}
    for r in runs:
        key = tuple("–" if value_of(r, k) is None else str(value_of(r, k)) for k in by)  # absent: a dash
        status = "completed" if r.status == "completed" else r.status
        row_key = (key, status if status != "completed" else "", str(r.path) if status != "completed" else "")
        rows.setdefault(row_key, Row(key=key, status=status)).runs.append(r)
    return list(rows.values())


def mean_std(values: list[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None)  # one seed: no std


def table_records(rows: list[Row], by: list[str], metric: str) -> list[dict]:
    records = []
    for row in rows:
        values = [float(r.metrics[metric]) for r in row.runs if isinstance(r.metrics.get(metric), (int, float))]
        mean, std = mean_std(values if row.status == "completed" else [])
        bits = [
            float(r.metrics["bits_per_weight"])
            for r in row.runs
            if isinstance(r.metrics.get("bits_per_weight"), (int, float))
        ]
        checks = {paper_check.check(r.metrics, metric) for r in row.runs}
        paper, note = (
            next(iter(checks)) if len(checks) == 1 else (None, "the row's runs differ in what they compare to")
        )
        rec = {k: v for k, v in zip(by, row.key)}
        rec.update(
            {
                "bits_per_weight": round(statistics.fmean(bits), 4) if bits else None,
                f"{metric}_mean": None if mean is None else round(mean, 2),
                f"{metric}_std": None if std is None else round(std, 2),
                "n": len(values) if row.status == "completed" else len(row.runs),
                "paper": paper,
                "delta": None if (paper is None or mean is None) else round(mean - paper, 2),
                "paper_note": note,
                "epochs": max((r.metrics.get("epochs") or 0 for r in row.runs), default=0),
                "status": row.status,
            }
        )
        for key in EXTRA_COLUMNS:
            vals = [v for v in (extra_values(r)[key] for r in row.runs) if v is not None]
            rec[key] = round(statistics.fmean(vals), 4) if vals else None
        worst = min if "acc" in metric else max  # accuracies: the lowest; loss, time, bits: the highest
        rec["worst"] = round(worst(values), 2) if values and row.status == "completed" else None
        if row.status != "completed":
            run = row.runs[0]
            note = run.metrics.get("error") or ""
            if row.status in ("running", "dead"):
                age = time.time() - (run.path / "metrics.json").stat().st_mtime
                note = f"last update {age / 60:.0f} min ago"
                if row.status == "dead":
                    note = f"metrics.json says running but no process holds the run (killed?); {note}"
            elif row.status == "interrupted":
                note = f"{note + '; ' if note else ''}continue with binexp train resume={run.path}"
            rec["status"] = f"{row.status}: {note}" if note else row.status
            rec["run"] = str(run.path)
        marked = divergence_note(row.runs)
        if marked:
            rec["status"] = f"{rec['status']}; {marked}"
        records.append(rec)
    return records


def divergence_note(runs: list[Run]) -> str:
    """What :class:`binexp.lit.divergence.DivergenceMonitor` recorded for these runs:
    "collapsed at epoch 16", "diverged at epoch 3" or "2 of 3 runs collapsed (epochs 16, 17)"."""
    events = [r.metrics["divergence"] for r in runs if isinstance(r.metrics.get("divergence"), dict)]
    if not events:
        return ""
    verbs = {"collapsed" if e.get("kind") == "collapse" else "diverged" for e in events}
    verb = verbs.pop() if len(verbs) == 1 else "collapsed or diverged"
    epochs = ", ".join(str(e.get("epoch")) for e in events)
    if len(runs) == 1:
        return f"{verb} at epoch {epochs}"
    return f"{len(events)} of {len(runs)} runs {verb} (epoch{'s' if len(events) > 1 else ''} {epochs})"


def _fmt(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.2f}" if abs(value) >= 1 or value == 0 else f"{value:.4g}"
    return str(value)


def _fmt_bits(value) -> str:
    """Bits per weight: 2 decimals where that is exact (32.00, 1.00, 0.40), else the 4 the CSV
    keeps (FleXOR's per-layer ceil: 1.0008, 0.4003), so markdown and CSV show the same number."""
    if value is None:
        return "–"
    return f"{value:.2f}" if round(value, 2) == value else f"{value:.4f}"


def render(records: list[dict], by: list[str], metric: str, fmt: str, columns: tuple[str, ...] = ()) -> str:
    """The table; ``columns`` (keys of :data:`COLUMN_NAMES`) adds those columns where some run records them."""
    has_bits = any(r["bits_per_weight"] not in (None, 32.0) for r in records)
    has_paper = any(r["paper"] is not None or r.get("paper_note") for r in records)
    wanted = {COLUMN_NAMES[c] for c in columns}
    extras = [k for k in EXTRA_COLUMNS if k in wanted and any(r.get(k) is not None for r in records)]
    stats = [k for k in STAT_COLUMNS if k in wanted and any(r.get(k) is not None for r in records)]
    if fmt == "csv":
        cols = by + [
            "bits_per_weight",
            *extras,
            f"{metric}_mean",
            f"{metric}_std",
            *stats,
            "n",
            "paper",
            "delta",
            "paper_note",
            "epochs",
            "status",
        ]
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore", lineterminator="\n")
        w.writeheader()
        for r in records:
            w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in cols})
        return buf.getvalue().rstrip("\n")
    unit = " (%)" if "acc" in metric else ""
    header = (
        list(by)
        + (["bits/weight"] if has_bits else [])
        + [EXTRA_COLUMNS[k] for k in extras]
        + [f"{metric}{unit}", *(STAT_COLUMNS[k] + unit for k in stats), "n"]
    )
    header += (["paper", "Δ"] if has_paper else []) + ["epochs", "status"]
    lines: list[list[str]] = []
    notes: dict[str, int] = {}
    for r in records:
        acc = (
            "–"
            if r[f"{metric}_mean"] is None
            else (
                f"{r[f'{metric}_mean']:.2f} ± {r[f'{metric}_std']:.2f}"
                if r[f"{metric}_std"] is not None
                else f"{r[f'{metric}_mean']:.2f}"
            )
        )
        cells = [str(r.get(k)) for k in by] + ([_fmt_bits(r["bits_per_weight"])] if has_bits else [])
        cells += [("–" if r[k] is None else f"{r[k]:.{2 if k == 'model_size_kib' else 4}f}") for k in extras] + [
            acc,
            *("–" if r[k] is None else f"{r[k]:.2f}" for k in stats),
            str(r["n"]),
        ]
        if has_paper:
            paper = _fmt(r["paper"])
            if r["paper"] is None and r.get("paper_note"):
                paper = f"— [{notes.setdefault(r['paper_note'], len(notes) + 1)}]"
            cells += [paper, "–" if r["delta"] is None else f"{r['delta']:+.2f}"]
        cells += [str(r["epochs"]), r["status"]]
        lines.append(cells)
    footnotes = [f"[{i}] no paper value: {text}" for text, i in notes.items()]
    if fmt == "latex":

        def esc(s):
            return (
                s.replace("\\", r"\textbackslash{}")
                .replace("_", r"\_")
                .replace("%", r"\%")
                .replace("&", r"\&")
                .replace("±", r"$\pm$")
                .replace("Δ", r"$\Delta$")
            )

        out = [
            r"\begin{tabular}{" + "l" * len(header) + "}",
            r"\toprule",
            " & ".join(esc(h) for h in header) + r" \\",
            r"\midrule",
        ]
        out += [" & ".join(esc(c) for c in cells) + r" \\" for cells in lines]
        out += [r"\bottomrule", r"\end{tabular}"] + [f"% {f}" for f in footnotes]
        return "\n".join(out)
    md = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    md += ["| " + " | ".join(c.replace("|", "/") for c in cells) + " |" for cells in lines]
    return "\n".join(md + ([""] + footnotes if footnotes else []))


def render_alpha(records: list[dict], rows: list[Row], by: list[str]) -> str:
    """RBNN's final α per layer (mean over a row's seeds), one column per row."""
    cols: list[str] = []
    layers: dict[str, dict[int, list[float]]] = {}
    for row in rows:
        dicts = [r.metrics["alpha_final"] for r in row.runs if isinstance(r.metrics.get("alpha_final"), dict)]
        if not dicts:
            continue
        cols.append(", ".join(f"{k}={v}" for k, v in zip(by, row.key)) or row.runs[0].metrics.get("name", "run"))
        for d in dicts:
            for layer, v in d.items():
                if _number(v) is not None:
                    layers.setdefault(layer, {}).setdefault(len(cols) - 1, []).append(float(v))
    if not cols:
        raise BinexpError(
            "report: --alpha: no run records alpha_final; fix: pass RBNN runs (alpha_final in metrics.json)"
        )
    md = ["| layer | " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in range(len(cols) + 1)) + "|"]
    for layer, per_col in layers.items():
        md.append(
            f"| {layer} | "
            + " | ".join(f"{statistics.fmean(per_col[i]):.4f}" if i in per_col else "–" for i in range(len(cols)))
            + " |"
        )
    return "\n".join(md)


def plot(records: list[dict], rows: list[Row], by: list[str], metric: str, out_dir: Path) -> list[Path | str]:
    """acc_vs_bits.png (binary rows against bits, fp as reference lines; when bits vary or an
    fp row is there to compare with) and val_curves.png
    (one line per configuration, x in epochs); returns the files, and for a figure not drawn a
    sentence saying why (see ``binexp.analysis.plots``)."""
    from binexp.analysis.plots import acc_vs_bits, val_curves

    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path | str] = []
    path, _ = acc_vs_bits(records, rows, by, metric, out_dir)
    written.append(
        path
        if path is not None
        else "acc_vs_bits.png not drawn: every completed binary row has the same bits per weight and no "
        "full-precision row is there to compare with (add quantizer=fp or vary the bits)"
    )
    written.append(val_curves(rows, by, out_dir)[0])
    return written


__all__ = ["find_runs", "group", "render", "table_records"]
