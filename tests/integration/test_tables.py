"""Every table of scripts/tables.py runs at smoke scale and prints its table with the paper's numbers."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))
from tables import EVALUATIONS, MODEL_SWEEPS, SMOKE_EXTRA, TABLES, row_label  # noqa: E402

from tests.conftest import HANG_LIMIT  # noqa: E402


def has_paper_value(experiment: str) -> bool:
    import yaml

    meta = yaml.safe_load((REPO / "conf" / "experiment" / f"{experiment}.yaml").read_text()).get("meta") or {}
    return meta.get("paper_value") is not None


def has_paper_note(experiment: str) -> bool:
    """No number, but a reason why (the report shows "— [n]" with the reason as its footnote)."""
    import yaml

    meta = yaml.safe_load((REPO / "conf" / "experiment" / f"{experiment}.yaml").read_text()).get("meta") or {}
    return meta.get("paper_value") is None and bool(meta.get("paper_note"))


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(TABLES))
def test_table_script_smoke(name, tmp_path, figs):
    out = tmp_path / "sweep"
    r = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "tables.py"), name, "--smoke", "--out", str(out)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=HANG_LIMIT,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    experiments = TABLES[name][1]
    rows = [line for line in r.stdout.splitlines() if line.startswith("| ") and not line.startswith("| experiment")]
    models = MODEL_SWEEPS.get(name, ())
    if models:  # experiment x network, the network varying fastest
        assert [row.split("|")[2].strip() for row in rows] == [m for _ in experiments for m in models]
        experiments = [e for e in experiments for _ in models]
    assert [row.split("|")[1].strip() for row in rows] == experiments  # the paper's order
    if all(row_label(e) for e in experiments):  # each row says what it changes
        # markdown cells show "|" as "/"
        assert [row.split("|")[2].strip() for row in rows] == [row_label(e).replace("|", "/") for e in experiments]
    assert all(row.rstrip(" |").endswith("completed") for row in rows), rows
    header = next(line for line in r.stdout.splitlines() if line.startswith("| experiment"))
    assert f"## {TABLES[name][0]} (smoke: synthetic data, " in r.stdout  # the table says it is smoke
    assert "".join(f", {o}" for o in SMOKE_EXTRA.get(name, [])) + ")\n" in r.stdout  # and how it was made smaller
    footnoted = [has_paper_value(e) or has_paper_note(e) for e in experiments]
    if any(footnoted):
        assert "| paper | Δ |" in header
        # a smoke run is never set beside the paper's number as if equal: "—" and a footnote why where the
        # preset has a number (or says why it has none), "–" where it has neither
        paper = header.strip("|").split("|").index(" paper ")
        cells = [row.strip("|").split("|")[paper].strip() for row in rows]
        assert all(c.startswith("— [") if f else c == "–" for c, f in zip(cells, footnoted)), rows
        assert not any(c[:1].isdigit() for c in cells), rows  # never a number beside a smoke run
    else:
        assert "paper" not in header
    # a sweep whose settings all give one number cannot see a wiring error
    assert_settings_differ(
        out,
        [f"{e} {m}" for e, m in zip(experiments, models * len(TABLES[name][1]))] if models else experiments,
        by_model=bool(models),
    )
    if name == "flexor_table1":
        check_flexor_report(out, r.stdout, tmp_path)
    if name in SWEEP_FIGURE:
        check_sweep_figure(out, SWEEP_FIGURE[name], figs)


def assert_settings_differ(sweep: Path, jobs: list[str], by_model: bool = False) -> None:
    """Every setting of a smoke sweep (every table's) ends at its own validation loss (same seed, same
    data); ``jobs`` are experiments, or "<experiment> <model>" for a sweep over networks (``by_model``).
    rbnn_ablation needs its SMOKE_EXTRA for that: at debug=smoke alone (2 steps, the code's BN gamma =
    1e-8 and theta0 = pi/2) theta_clip, theta_bounded, schedule_1000 and act_t_cap ended at
    rbnn_ablation_rat's val loss to the last digit and angle_penalty at rbnn_ablation_t's."""
    import json

    losses = {}
    for m in sweep.rglob("metrics.json"):
        record = json.loads(m.read_text())
        job = record["choices"]["experiment"] + (f" {record['choices']['model']}" if by_model else "")
        losses[job] = record["val_loss"]
    assert sorted(losses) == sorted(jobs)
    ties = {e: [o for o in losses if o != e and losses[o] == loss] for e, loss in losses.items()}
    assert not any(ties.values()), f"settings gave identical val losses: { {e: t for e, t in ties.items() if t} }"


# tables whose sweep `binexp plot <sweep> <figure>` draws (README, Figures)
SWEEP_FIGURE = {"flexor_fig6": "flexor_stanh", "flexor_fig7": "flexor_ntap"}


def check_sweep_figure(sweep: Path, figure: str, figs: list[dict]) -> None:
    """FleXOR Fig. 6/7 from the table's real smoke sweep, by the README's command: one line named by
    the setting the runs share, through each run's accuracy at its S_tanh / N_tap (read from the
    presets), S_tanh on a log axis ticked 5, 10, 20, 100, the paper's symbol on x, the smoke mark."""
    import json

    from binexp.analysis.plots import draw
    from binexp.cli import main

    assert main(["plot", str(sweep), figure]) == 0
    assert (sweep / "figures" / f"{figure}.png").read_bytes()[:4] == b"\x89PNG"
    drawn = figs[-1]
    _, series = draw(figure, sweep, sweep / "again")
    key, values = {"flexor_stanh": ("s_tanh", [5, 10, 20, 100]), "flexor_ntap": ("n_tap", [1, 2, 3, 4])}[figure]
    acc = {}
    for m in sweep.rglob("metrics.json"):
        record = json.loads(m.read_text())
        acc[int(re.search(r"(\d+)$", record["choices"]["experiment"]).group(1))] = record["best_val_acc1"]
    other = "n_tap=2" if figure == "flexor_stanh" else "s_tanh=10.0"
    assert series == {f"flexor, resnet32, n_in=8, n_out=10, {other}": [(float(v), acc[v]) for v in values]}
    ax = drawn["axes"][0]
    assert ax["legend"] == list(series)
    assert ax["xticks"] == [str(v) for v in values]
    assert ax["xscale"] == ("log" if figure == "flexor_stanh" else "linear")
    symbol = {"flexor_stanh": "S_tanh", "flexor_ntap": "N_tap"}[figure]
    assert ax["xlabel"] == f"{symbol} (quantizer.{key})" and ax["title"].endswith(f"accuracy against {symbol}")
    assert ax["ylabel"] == "best val top-1 (%, higher is better)"
    assert drawn["texts"] == [
        "drawn from synthetic data and smoke scale (debug=smoke: a few batches per epoch):"
        " only the shape means something"
    ]


def check_flexor_report(sweep: Path, stdout: str, cwd: Path) -> None:
    """The smoke FleXOR sweep's markdown has bits/weight, accuracy and the paper column, and its
    CSV parses back to the same numbers."""
    import csv
    import io

    from tests.conftest import run_cli

    lines = stdout.splitlines()
    header = next(line for line in lines if line.startswith("| experiment"))
    assert header == "| experiment | bits/weight | best_val_acc1 (%) | n | paper | Δ | epochs | status |"
    md = {
        c[0]: c
        for c in ([x.strip() for x in line.strip("|").split("|")] for line in lines if line.startswith("| flexor_"))
    }
    # FleXOR (arXiv 2009.04126) Table 1: ResNet-20 at N_out = 20 with per-layer ceil
    assert [md[f"flexor_resnet20_b{b}"][1] for b in ("10", "08", "06", "04")] == [
        "1.0008",
        "0.8006",
        "0.6005",
        "0.4003",
    ]
    # a smoke run is never printed beside FleXOR Table 1's number (88.23, 91.20): "—" and a footnote why
    assert md["flexor_resnet20_b04"][4].startswith("— [") and md["flexor_resnet32_b08"][4].startswith("— [")
    assert (
        "no paper value: flexor_resnet20_b04: smoke: synthetic data, 1 epoch, limit_train_batches=2, "
        "limit_val_batches=1 (paper: cifar10, 500 epochs)" in stdout
    )
    r = run_cli(["report", str(sweep), "--by", "experiment", "--format", "csv"], cwd)
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert sorted(row["experiment"] for row in rows) == sorted(md)
    for row in rows:
        cells = md[row["experiment"]]
        assert float(row["bits_per_weight"]) == float(cells[1])
        assert float(row["best_val_acc1_mean"]) == float(cells[2]) and row["n"] == cells[3] == "1"
        assert row["paper"] == row["delta"] == "" and row["paper_note"].startswith(
            f"{row['experiment']}: smoke: synthetic data"
        )


def test_readme_lists_every_table_script_with_its_wall_time():
    readme = (REPO / "README.md").read_text().splitlines()
    for name in TABLES:
        line = next((x for x in readme if x.startswith(f"| `scripts/tables.py {name}` |")), None)
        assert line is not None, name
        assert line.rstrip(" |").split("|")[-1].strip().startswith("≈"), line  # the expected wall time column


def test_rbnn_ablation_rows_in_table_4_order_with_what_each_changes():
    """RBNN (arXiv 2009.13055) Table 4: XNOR, then + T, + R, + R + T, + R + A + T (the full model)."""
    rows = TABLES["rbnn_ablation"][1]
    assert rows[:5] == [f"rbnn_ablation_{x}" for x in ("xnor", "t", "r", "rt", "rat")]
    assert [row_label(e) for e in rows[:5]] == [
        "XNOR-Net baseline",
        "XNOR + T (training-aware approximation)",
        "XNOR + R (rotation, no approximation)",
        "XNOR + R + T",
        "XNOR + R + A + T (full RBNN)",
    ]
    assert all(row_label(e) for e in rows)


def test_tables_list_and_unknown_table():
    r = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "tables.py"), "--list"],
        capture_output=True,
        text=True,
        timeout=HANG_LIMIT,
    )
    assert r.returncode == 0, r.stderr
    assert [line.split()[0] for line in r.stdout.splitlines()] == list(TABLES) + list(EVALUATIONS)
    runs = {name: len(TABLES[name][1]) * max(1, len(MODEL_SWEEPS.get(name, ()))) for name in TABLES}  # x models
    assert all(f"({runs[line.split()[0]]} runs, " in line for line in r.stdout.splitlines()[: len(TABLES)])
    r = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "tables.py"), "no_such_table"],
        capture_output=True,
        text=True,
        timeout=HANG_LIMIT,
    )
    assert r.returncode == 2 and "unknown table 'no_such_table'" in r.stderr and r.stdout == ""
    assert not list(REPO.glob("scripts/table_*.py"))  # one entry point, no per-table wrappers
