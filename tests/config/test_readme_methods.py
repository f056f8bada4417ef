"""The README's method table: one row per registered quantizer, each with its paper's arXiv id,
its official code (or why none), what binexp follows, and presets that exist."""

import re
from pathlib import Path

from binexp.quant.registry import quantizer_names

REPO = Path(__file__).resolve().parents[2]


def method_rows() -> dict[str, list[str]]:
    lines = (REPO / "README.md").read_text().splitlines()
    start = lines.index(
        "| quantizer | paper | official code | binexp's default, and where readings differ | preset (paper's number) |"
    )
    rows = {}
    for line in lines[start + 2 :]:
        if not line.startswith("| `"):
            break
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))]
        rows[cells[0].strip("`")] = cells
    return rows


def test_readme_method_table_lists_every_quantizer_with_paper_code_and_preset():
    rows = method_rows()
    assert sorted(rows) == sorted(quantizer_names())
    experiments = {p.stem for p in (REPO / "conf" / "experiment").glob("*.yaml")}
    for name, (_, paper, code, follows, presets) in rows.items():
        if name != "fp":
            assert re.search(r"arXiv \d{4}\.\d{5}", paper), (name, paper)
        assert code and follows, name
        named = [p for p in re.findall(r"`([a-z0-9_]+)`", presets) if not p.startswith("_")]
        assert named and set(named) <= experiments, (name, set(named) - experiments)
