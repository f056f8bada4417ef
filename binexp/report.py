"""``binexp report <dir>...``: every run under the given run or sweep directories as one table.

It reads each run's ``metrics.json`` (and nothing else, except TensorBoard events for
``--plot``): one row per configuration — the overrides that differ between runs, or ``--by`` —
with seeds folded into mean ± std (n), and, where the run's experiment has a paper value in its
``meta``, the paper's number and our difference beside it. Runs that failed, were interrupted
or are still running get rows of their own with that status; none is dropped."""

from __future__ import annotations

import argparse
import csv
import io
import json
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

from binexp.errors import BinexpError

FOLDED = {"seed"}  # keys folded into mean ± std, never columns
PAPER_KEYS = ("paper_value", "value", "paper")


@dataclass
class Run:
    path: Path
    metrics: dict
    overrides: dict

    @property
    def status(self) -> str:
        return self.metrics.get("status", "unknown")


@dataclass
class Row:
    key: tuple
    runs: list[Run] = field(default_factory=list)
    status: str = "completed"


def parse_overrides(items: list[str]) -> dict:
    out = {}
    for item in items or []:
        if "=" in item:
            k, v = item.split("=", 1)
            out[k.lstrip("+~")] = v
    return out


def find_runs(dirs: list[str]) -> list[Run]:
    runs = []
    for d in dirs:
        root = Path(d).expanduser()
        if not root.exists():
            raise BinexpError(f"report: {root} does not exist; fix: pass run or sweep directories (e.g. outputs/multiruns/<sweep>)")
        candidates = {p.parent for p in root.rglob("metrics.json")} | {p.parent.parent for p in root.rglob(".hydra/overrides.yaml")}
        for run_dir in sorted(candidates):
            if run_dir.name == "tensorboard":
                continue
            mfile = run_dir / "metrics.json"
            if mfile.is_file():
                try:
                    metrics = json.loads(mfile.read_text())
                except json.JSONDecodeError as e:
                    metrics = {"status": "unreadable", "error": f"metrics.json: {e}"}
            else:
                from omegaconf import OmegaConf

                saved = [str(o) for o in OmegaConf.load(run_dir / ".hydra" / "overrides.yaml")]
                metrics = {"status": "no metrics", "overrides": saved, "error": "stopped before training started"}
            runs.append(Run(run_dir, metrics, parse_overrides(metrics.get("overrides", []))))
    if not runs:
        raise BinexpError(f"report: no runs (metrics.json) under {', '.join(dirs)}; fix: pass the directory of a run or sweep")
    return runs


def differing_keys(runs: list[Run]) -> list[str]:
    keys: list[str] = []
    for r in runs:
        for k in r.overrides:
            if k not in keys and k not in FOLDED and not k.startswith("hydra."):
                keys.append(k)
    return [k for k in keys if len({r.overrides.get(k) for r in runs}) > 1]


def value_of(run: Run, key: str):
    if key in run.overrides:
        return run.overrides[key]
    node = run.metrics
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def paper_value(run: Run):
    meta = run.metrics.get("meta") or {}
    for key in PAPER_KEYS:
        if isinstance(meta.get(key), (int, float)):
            return float(meta[key])
    return None


def group(runs: list[Run], by: list[str]) -> list[Row]:
    rows: dict[tuple, Row] = {}
    for r in runs:
        key = tuple(str(value_of(r, k)) for k in by)
        status = "completed" if r.status == "completed" else r.status
        row_key = (key, status if status != "completed" else "", str(r.path) if status != "completed" else "")
        rows.setdefault(row_key, Row(key=key, status=status)).runs.append(r)
    return list(rows.values())


def mean_std(values: list[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def table_records(rows: list[Row], by: list[str], metric: str) -> list[dict]:
    records = []
    for row in rows:
        values = [float(r.metrics[metric]) for r in row.runs if isinstance(r.metrics.get(metric), (int, float))]
        mean, std = mean_std(values if row.status == "completed" else [])
        bits = [r.metrics.get("bits_per_weight") for r in row.runs if isinstance(r.metrics.get("bits_per_weight"), (int, float))]
        paper = next((p for p in (paper_value(r) for r in row.runs) if p is not None), None)
        rec = {k: v for k, v in zip(by, row.key)}
        rec.update({
            "bits_per_weight": round(statistics.fmean(bits), 4) if bits else None,
            f"{metric}_mean": None if mean is None else round(mean, 2),
            f"{metric}_std": None if std is None else round(std, 2),
            "n": len(values) if row.status == "completed" else len(row.runs),
            "paper": paper,
            "delta": None if (paper is None or mean is None) else round(mean - paper, 2),
            "epochs": max((r.metrics.get("epochs") or 0 for r in row.runs), default=0),
            "status": row.status,
        })
        if row.status != "completed":
            run = row.runs[0]
            note = run.metrics.get("error") or ""
            if row.status == "running":
                age = time.time() - (run.path / "metrics.json").stat().st_mtime
                note = f"last update {age / 60:.0f} min ago"
            rec["status"] = f"{row.status}: {note}" if note else row.status
            rec["run"] = str(run.path)
        records.append(rec)
    return records


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


def render(records: list[dict], by: list[str], metric: str, fmt: str) -> str:
    has_bits = any(r["bits_per_weight"] not in (None, 32.0) for r in records)
    has_paper = any(r["paper"] is not None for r in records)
    if fmt == "csv":
        cols = by + ["bits_per_weight", f"{metric}_mean", f"{metric}_std", "n", "paper", "delta", "epochs", "status"]
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore", lineterminator="\n")
        w.writeheader()
        for r in records:
            w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in cols})
        return buf.getvalue().rstrip("\n")
    header = list(by) + (["bits/weight"] if has_bits else []) + [f"{metric} (%)", "n"]
    header += (["paper", "Δ"] if has_paper else []) + ["epochs", "status"]
    lines = []
    for r in records:
        acc = "–" if r[f"{metric}_mean"] is None else (
            f"{r[f'{metric}_mean']:.2f} ± {r[f'{metric}_std']:.2f}" if r["n"] > 1 else f"{r[f'{metric}_mean']:.2f}")
        cells = [str(r.get(k)) for k in by] + ([_fmt_bits(r["bits_per_weight"])] if has_bits else []) + [acc, str(r["n"])]
        cells += ([_fmt(r["paper"]), "–" if r["delta"] is None else f"{r['delta']:+.2f}"] if has_paper else [])
        cells += [str(r["epochs"]), r["status"]]
        lines.append(cells)
    if fmt == "latex":
        esc = lambda s: s.replace("\\", r"\textbackslash{}").replace("_", r"\_").replace("%", r"\%").replace("&", r"\&").replace("±", r"$\pm$").replace("Δ", r"$\Delta$")  # noqa: E731
        out = [r"\begin{tabular}{" + "l" * len(header) + "}", r"\toprule", " & ".join(esc(h) for h in header) + r" \\", r"\midrule"]
        out += [" & ".join(esc(c) for c in cells) + r" \\" for cells in lines]
        out += [r"\bottomrule", r"\end{tabular}"]
        return "\n".join(out)
    md = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    md += ["| " + " | ".join(c.replace("|", "/") for c in cells) + " |" for cells in lines]
    return "\n".join(md)


def scalar_series(run_dir: Path, tag: str) -> list[tuple[int, float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tb = run_dir / "tensorboard"
    if not tb.is_dir():
        return []
    tb = next((p.parent for p in sorted(tb.rglob("events.out.tfevents.*"))), tb)  # <run dir>/tensorboard/<run name>/
    acc = EventAccumulator(str(tb), size_guidance={"scalars": 0})
    acc.Reload()
    if tag not in acc.Tags().get("scalars", []):
        return []
    return [(e.step, e.value) for e in acc.Scalars(tag)]


def plot(records: list[dict], rows: list[Row], by: list[str], metric: str, out_dir: Path) -> list[Path]:
    """acc_vs_bits.png (when bits per weight vary) and val_curves.png; returns the files."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    # one line per model (ResNet-20 and ResNet-32 of FleXOR's Table 1 are two curves)
    ok = [(rec, row.runs[0].metrics.get("model") or "") for rec, row in zip(records, rows)
          if rec["status"] == "completed" and rec[f"{metric}_mean"] is not None and rec["bits_per_weight"] is not None]
    if len({rec["bits_per_weight"] for rec, _ in ok}) > 1:
        fig, ax = plt.subplots(figsize=(5, 3.5))
        for i, model in enumerate(dict.fromkeys(m for _, m in ok)):
            pts = sorted(((r["bits_per_weight"], r[f"{metric}_mean"], r[f"{metric}_std"] or 0.0, r["paper"])
                          for r, m in ok if m == model), key=lambda p: p[0])
            name = f"{model} " if model else ""
            ax.errorbar([p[0] for p in pts], [p[1] for p in pts], yerr=[p[2] for p in pts], marker="o", capsize=3,
                        color=f"C{i % 10}", label=f"{name}binexp")
            paper = [(p[0], p[3]) for p in pts if p[3] is not None]
            if paper:
                ax.plot([p[0] for p in paper], [p[1] for p in paper], "s--", color=f"C{i % 10}", alpha=0.6,
                        label=f"{name}paper")
        ax.set_xlabel("bits per weight")
        ax.set_ylabel(f"{metric} (%)")
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        path = out_dir / "acc_vs_bits.png"
        fig.savefig(path, dpi=120)
        plt.close(fig)
        written.append(path)
    fig, ax = plt.subplots(figsize=(6, 4))
    drawn = 0
    for row in rows:
        label = ", ".join(f"{k}={v}" for k, v in zip(by, row.key)) or row.runs[0].metrics.get("name", "run")
        for i, run in enumerate(row.runs):
            series = scalar_series(run.path, "val/acc1")
            if series:
                ax.plot([s for s, _ in series], [v for _, v in series], "o-", markersize=3, color=f"C{rows.index(row) % 10}",
                        label=label if i == 0 else None, alpha=0.8)
                drawn += 1
    ax.set_xlabel("step")
    ax.set_ylabel("val/acc1 (%)")
    ax.grid(alpha=0.3)
    if drawn:
        ax.legend(fontsize=7)
    fig.tight_layout()
    path = out_dir / "val_curves.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    written.append(path)
    return written


def main(args: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="binexp report", description=__doc__.splitlines()[0])
    parser.add_argument("dirs", nargs="+", help="run or sweep directories")
    parser.add_argument("--by", default=None, help="comma-separated keys for the rows (default: the overrides that differ)")
    parser.add_argument("--metric", default="best_val_acc1", help="metrics.json key to report (default best_val_acc1; val_acc1 = last epoch)")
    parser.add_argument("--format", default="md", choices=("md", "csv", "latex"))
    parser.add_argument("--plot", default=None, metavar="DIR", help="write acc_vs_bits.png and val_curves.png here")
    ns = parser.parse_args(args)
    runs = find_runs(ns.dirs)
    by = [k for k in ns.by.split(",") if k] if ns.by else differing_keys(runs)
    if not by:
        by = ["name"]
    rows = group(runs, by)
    records = table_records(rows, by, ns.metric)
    print(render(records, by, ns.metric, ns.format))
    if ns.plot:
        for path in plot(records, rows, by, ns.metric, Path(ns.plot)):
            print(f"wrote {path}")
    failed = sum(1 for r in records if not r["status"].startswith("completed"))
    if failed and ns.format == "md":
        print(f"\n{failed} row(s) did not complete; see their status.")
    return 0


__all__ = ["find_runs", "group", "main", "render", "table_records"]
