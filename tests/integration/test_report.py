"""binexp report: tables from sweeps (seeds folded, paper column, failed runs) and plots."""

from __future__ import annotations

import csv
import io
import json
import statistics

import pytest
from PIL import Image

from tests.conftest import QUICK, read_metrics, run_cli

SHORT = ["debug=smoke"]  # conf/debug/smoke.yaml: synthetic data, one epoch of 2 batches, no sanity check


@pytest.fixture(scope="module")
def seed_sweep(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("seeds")
    sweep = tmp / "sweep"
    r = run_cli(["train", "-m", "quantizer=fp,xnor", "seed=1,2,3", *SHORT, f"hydra.sweep.dir={sweep}"], tmp)
    assert r.returncode == 0, r.stderr[-2000:]
    return sweep


def test_seeds_fold_into_mean_std(seed_sweep, tmp_path):
    r = run_cli(["report", str(seed_sweep)], tmp_path)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("| quantizer | bits/weight | best_val_acc1 (%) | n |")
    rows = {line.split("|")[1].strip(): line for line in lines[2:] if line.startswith("| ")}
    assert set(rows) == {"fp", "xnor"}
    for q, line in rows.items():
        cells = [c.strip() for c in line.strip("|").split("|")]
        accs = [
            read_metrics(p)["best_val_acc1"] for p in seed_sweep.iterdir() if p.is_dir() and f"quantizer={q}" in p.name
        ]
        assert len(accs) == 3
        assert cells[2] == f"{statistics.fmean(accs):.2f} ± {statistics.stdev(accs):.2f}" and cells[3] == "3"
        assert cells[1] == ("32.00" if q == "fp" else "1.00")


def test_csv_parses_back_with_the_same_numbers(seed_sweep, tmp_path):
    md = run_cli(["report", str(seed_sweep)], tmp_path).stdout
    r = run_cli(["report", str(seed_sweep), "--format", "csv"], tmp_path)
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert [row["quantizer"] for row in rows] == ["fp", "xnor"]
    for row in rows:
        assert (
            f"| {row['quantizer']} | {float(row['bits_per_weight']):.2f} | {float(row['best_val_acc1_mean']):.2f} ± "
            f"{float(row['best_val_acc1_std']):.2f} | {row['n']} |" in md
        )
    latex = run_cli(["report", str(seed_sweep), "--format", "latex"], tmp_path).stdout
    assert latex.startswith(r"\begin{tabular}") and r"$\pm$" in latex


def test_plots_are_valid_pngs(seed_sweep, tmp_path):
    r = run_cli(["report", str(seed_sweep), "--plot", str(tmp_path / "plots")], tmp_path)
    assert r.returncode == 0, r.stderr
    for name in ("acc_vs_bits.png", "val_curves.png"):
        path = tmp_path / "plots" / name
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        with Image.open(path) as img:
            img.verify()
        with Image.open(path) as img:
            assert img.size[0] > 300 and img.size[1] > 200


def test_failed_run_inside_a_sweep_is_listed(tmp_path, cifar_root):
    from tests.conftest import write_cifar_fixture

    broken = write_cifar_fixture(tmp_path / "broken")
    (broken / "cifar-10-batches-py" / "data_batch_1").write_bytes(b"garbage")
    sweep = tmp_path / "sweep"
    r = run_cli(
        [
            "train",
            "-m",
            f"data.root={cifar_root},{broken}",
            "data.batch_size=64",
            "trainer.max_epochs=1",
            "trainer.limit_train_batches=1",
            "trainer.limit_val_batches=1",
            *QUICK,
            f"hydra.sweep.dir={sweep}",
        ],
        tmp_path,
    )
    assert r.returncode != 0  # the sweep reports the failure at the end ...
    statuses = sorted(read_metrics(p)["status"] for p in sweep.iterdir() if p.is_dir())
    assert statuses == ["completed", "failed"]  # ... after running every job
    rep = run_cli(["report", str(sweep), "--by", "data.root"], tmp_path)
    assert rep.returncode == 0, rep.stderr
    assert "| completed |" in rep.stdout
    failed = [line for line in rep.stdout.splitlines() if "| failed: " in line]
    assert len(failed) == 1 and "data_batch_1 is corrupt" in failed[0] and "1 row(s) did not complete" in rep.stdout


def test_paper_column_and_running_runs(tmp_path):
    """Report reads metrics.json only: hand-made runs check the paper column and statuses."""

    def run(name, n_in, acc, seed, status="completed", paper=None):
        d = tmp_path / "sweep" / name
        d.mkdir(parents=True)
        m = {
            "overrides": [f"quantizer.n_in={n_in}", f"seed={seed}"],
            "best_val_acc1": acc,
            "bits_per_weight": n_in / 20,
            "epochs": 3,
            "status": status,
            "meta": {"paper_value": paper} if paper else {},
        }
        (d / "metrics.json").write_text(json.dumps(m))

    run("a", 8, 80.0, 1, paper=88.23)
    run("b", 8, 82.0, 2, paper=88.23)
    run("c", 16, 85.0, 1, paper=89.91)
    run("d", 16, 10.0, 2, status="running", paper=89.91)
    from binexp.runs.record import RunLock

    lock = RunLock(tmp_path / "sweep" / "d")  # a running run: its training process holds the lock
    assert lock.acquire()
    try:
        r = run_cli(["report", str(tmp_path / "sweep"), "--format", "csv"], tmp_path)
    finally:
        lock.release()
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert [
        (row["quantizer.n_in"], row["bits_per_weight"], row["best_val_acc1_mean"], row["n"], row["paper"], row["delta"])
        for row in rows[:2]
    ] == [("8", "0.4", "81.0", "2", "88.23", "-7.23"), ("16", "0.8", "85.0", "1", "89.91", "-4.91")]
    assert rows[2]["status"].startswith("running: last update") and rows[2]["best_val_acc1_mean"] == ""


def test_report_on_nothing_is_one_line(tmp_path):
    r = run_cli(["report", str(tmp_path)], tmp_path)
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and "no runs" in r.stderr
