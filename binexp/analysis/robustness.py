"""CIFAR-10-C tables (BiBench's robustness track, arXiv:2301.11233; the corruptions of
arXiv:1903.12261): one run's accuracy per corruption and severity, and several runs side by side.

The mean corruption accuracy (mCA) is the mean top-1 over the evaluated (corruption, severity)
pairs of the benchmark's 15 corruptions (the 4 extras of the release, when evaluated, are shown
but not averaged in); the drop is clean top-1 minus mCA, in percentage points."""

from __future__ import annotations

import statistics

from binexp.data.cifar10c import CORRUPTIONS


def summary(clean_acc1: float, per_pair: dict[str, dict[str, dict]]) -> dict:
    """mCA, drop from clean, and the means per corruption and per severity."""
    standard = {c: v for c, v in per_pair.items() if c in CORRUPTIONS} or per_pair
    values = [s["acc1"] for sev in standard.values() for s in sev.values()]
    mca = statistics.fmean(values)
    severities = sorted({k for sev in standard.values() for k in sev}, key=int)
    return {
        "per_corruption_acc1": {
            c: round(statistics.fmean(s["acc1"] for s in sev.values()), 4) for c, sev in per_pair.items()
        },
        "per_severity_acc1": {
            k: round(statistics.fmean(sev[k]["acc1"] for sev in standard.values() if k in sev), 4) for k in severities
        },
        "mean_corruption_acc1": round(mca, 4),
        "drop": round(clean_acc1 - mca, 4),
    }


def format_table(record: dict) -> str:
    """One run: a row per corruption (top-1 % at each severity and their mean), then clean, mCA, drop."""
    severities = sorted({k for sev in record["corruptions"].values() for k in sev}, key=int)
    header = ["corruption", *(f"s{k}" for k in severities), "mean"]
    lines = [
        f"{record['run']} ({record['quantizer']}, {record['epochs']} epochs) on CIFAR-10-C, top-1 (%)",
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
    ]
    for corruption, sev in record["corruptions"].items():
        cells = [f"{sev[k]['acc1']:.2f}" if k in sev else "–" for k in severities]
        lines.append(f"| {corruption} | " + " | ".join(cells) + f" | {record['per_corruption_acc1'][corruption]:.2f} |")
    per_sev = record["per_severity_acc1"]
    lines.append(
        "| **mean** | "
        + " | ".join(f"{per_sev[k]:.2f}" for k in severities)
        + f" | {record['mean_corruption_acc1']:.2f} |"
    )
    lines.append("")
    lines.append(
        f"clean {record['clean']['acc1']:.2f} % ({record.get('clean_data')} val)   "
        f"mCA {record['mean_corruption_acc1']:.2f} %   drop {record['drop']:.2f} points"
    )
    return "\n".join(lines)


def side_by_side(records: list[dict], labels: list[str]) -> str:
    """Several runs' CIFAR-10-C evaluations as columns: clean, each corruption (mean over
    severities), mCA and the drop from clean."""
    corruptions: list[str] = []
    for r in records:
        corruptions += [c for c in r["per_corruption_acc1"] if c not in corruptions]
    header = ["top-1 (%)", *labels]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]

    def row(title: str, values: list) -> str:
        return f"| {title} | " + " | ".join("–" if v is None else f"{v:.2f}" for v in values) + " |"

    lines.append(row("clean", [r["clean"]["acc1"] for r in records]))
    for c in corruptions:
        lines.append(row(c, [r["per_corruption_acc1"].get(c) for r in records]))
    lines.append(row("**mCA**", [r["mean_corruption_acc1"] for r in records]))
    lines.append(row("**drop (points)**", [r["drop"] for r in records]))
    return "\n".join(lines)


__all__ = ["format_table", "side_by_side", "summary"]
