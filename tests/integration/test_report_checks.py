"""binexp report on hand-made metrics.json records (in-process, fast): the paper column only
beside runs that are the preset, top-5 paper values, key errors, one-seed std, statuses,
optional columns, and what --plot draws."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from binexp.cli import main


def write_run(
    root: Path,
    name: str,
    overrides: list[str],
    experiment: str | None = None,
    status: str = "completed",
    max_epochs: int | None = None,
    **metrics,
) -> Path:
    d = root / name
    d.mkdir(parents=True)
    meta = {}
    if experiment:
        from omegaconf import OmegaConf

        from binexp.preflight import compose

        meta = OmegaConf.to_container(compose([f"experiment={experiment}"]).meta, resolve=True)
    record = {
        "overrides": overrides,
        "choices": {"experiment": experiment} if experiment else {},
        "meta": meta,
        "status": status,
        "epochs": max_epochs or 1,
        "max_epochs": max_epochs,
        "best_val_acc1": 80.0,
        "bits_per_weight": 1.0,
        "name": name,
        "model": "resnet20",
        "quantizer": "x",
        **metrics,
    }
    (d / "metrics.json").write_text(json.dumps(record))
    return d


def report(capsys, *args) -> tuple[int, str, str]:
    code = main(["report", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def csv_rows(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


def test_a_preset_run_gets_its_paper_value_an_overridden_one_does_not(tmp_path, capsys):
    exp = "flexor_resnet20_b08"
    write_run(tmp_path, "a", [f"experiment={exp}"], exp, max_epochs=500, best_val_acc1=89.0, bits_per_weight=0.8)
    write_run(
        tmp_path,
        "b",
        [f"experiment={exp}", "quantizer.n_in=8"],
        exp,
        max_epochs=500,
        best_val_acc1=85.0,
        bits_per_weight=0.4,
    )
    code, out, _ = report(capsys, tmp_path, "--format", "csv")
    assert code == 0
    rows = {r["quantizer.n_in"]: r for r in csv_rows(out)}
    assert (rows["16"]["paper"], rows["16"]["delta"], rows["16"]["paper_note"]) == (
        "89.91",
        "-0.91",
        "",
    )  # 16: the preset's N_in
    assert rows["8"]["paper"] == "" and rows["8"]["delta"] == ""
    assert rows["8"]["paper_note"] == f"{exp}: not the preset: quantizer.n_in=8 (preset 16)"
    code, out, _ = report(capsys, tmp_path)
    line = next(x for x in out.splitlines() if x.startswith("| 8 |"))
    assert (
        "| — [1] | – |" in line
        and "[1] no paper value: flexor_resnet20_b08: not the preset: quantizer.n_in=8 (preset 16)" in out
    )


@pytest.mark.parametrize(
    "override, expected",
    [
        ("quantizer.binary_activations=true", "quantizer.binary_activations=True (preset False)"),
        ("model=resnet32", "model.name=resnet32 (preset resnet20)"),
        ("quantizer.flatten=torch", "quantizer.flatten=torch (preset tf)"),
    ],
)
def test_every_defining_field_hides_the_paper_value(tmp_path, capsys, override, expected):
    exp = "flexor_resnet20_b08"
    write_run(tmp_path, "a", [f"experiment={exp}", override], exp, max_epochs=500)
    _, out, _ = report(capsys, tmp_path, "--format", "csv")
    (row,) = csv_rows(out)
    assert row["paper"] == "" and expected in row["paper_note"]


@pytest.mark.parametrize(
    "override, expected",
    [
        ("schedule.lr=0.5", "schedule.lr=0.5 (preset 0.1)"),
        ("data.batch_size=16", "data.batch_size=16 (preset 128)"),
        ("angle_penalty=1.0", "angle_penalty=1.0 (preset 0.0)"),
        ("trainer.precision=16-mixed", "trainer.precision=16-mixed (preset 32-true)"),
    ],
)
def test_any_recipe_change_hides_the_paper_value(tmp_path, capsys, override, expected):
    """The rule is inverted: everything outside the result-neutral keys is recipe."""
    exp = "flexor_resnet20_b08"
    write_run(tmp_path, "a", [f"experiment={exp}", override], exp, max_epochs=500)
    _, out, _ = report(capsys, tmp_path, "--format", "csv")
    (row,) = csv_rows(out)
    assert row["paper"] == "" and row["paper_note"] == f"{exp}: not the preset: {expected}"


@pytest.mark.parametrize(
    "overrides",
    [
        ["trainer.enable_progress_bar=false"],
        ["data.root=/elsewhere/cifar10", "trainer.devices=2", "trainer.log_every_n_steps=1"],
        ["callbacks.layer_diagnostics.every_n_epochs=5", "logger.csv=true", "data.eval_batch_size=512", "seed=3"],
    ],
)
def test_result_neutral_overrides_keep_the_paper_value(tmp_path, capsys, overrides):
    exp = "flexor_resnet20_b08"
    write_run(tmp_path, "a", [f"experiment={exp}", *overrides], exp, max_epochs=500, best_val_acc1=89.0)
    _, out, _ = report(capsys, tmp_path, "--format", "csv")
    (row,) = csv_rows(out)
    assert (row["paper"], row["delta"], row["paper_note"]) == ("89.91", "-0.91", "")


def test_smoke_runs_are_marked_and_get_no_paper_value(tmp_path, capsys):
    exp = "rbnn_cifar_resnet20"
    write_run(tmp_path / "a", "a", [f"experiment={exp}", "data=synthetic", "trainer.max_epochs=1"], exp, max_epochs=1)
    _, out, _ = report(capsys, tmp_path / "a", "--format", "csv")
    (row,) = csv_rows(out)
    assert (
        row["paper"] == ""
        and row["paper_note"] == f"{exp}: smoke: synthetic data, 1 epoch (paper: cifar10, 1000 epochs)"
    )
    write_run(tmp_path / "b", "b", [f"experiment={exp}", "trainer.limit_train_batches=1"], exp, max_epochs=1000)
    _, out, _ = report(capsys, tmp_path / "b", "--format", "csv")
    assert csv_rows(out)[0]["paper_note"] == f"{exp}: smoke: limit_train_batches=1 (paper: cifar10, 1000 epochs)"


def test_a_preset_without_a_paper_number_shows_a_dash_and_its_reason(tmp_path, capsys):
    """BiBench's presets (paper_value null, paper_note why): "— [1]" and the footnote, never a number,
    in markdown; the reason in the CSV's paper_note; and no reason for metrics without paper keys."""
    for i, op in enumerate(("bnn", "xnor")):
        write_run(tmp_path / "in", f"r{i}", [f"experiment=bibench_{op}", "model=resnet20"], f"bibench_{op}")
    note = "not transcribed: BiBench's CIFAR-10 tables (arXiv:2301.11233) were not in any source retrieved here"
    _, out, _ = report(capsys, tmp_path / "in", "--by", "experiment", "--format", "csv")
    rows = csv_rows(out)
    assert [r["experiment"] for r in rows] == ["bibench_bnn", "bibench_xnor"]
    assert all(r["paper"] == r["delta"] == "" and r["paper_note"].startswith(note) for r in rows)
    _, out, _ = report(capsys, tmp_path / "in", "--by", "experiment")
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in out.splitlines() if "| bibench_" in line]
    assert [c[-4] for c in cells] == ["— [1]", "— [1]"] and [c[-3] for c in cells] == ["–", "–"]
    assert f"[1] no paper value: {note}" in out
    _, out, _ = report(capsys, tmp_path / "in", "--by", "experiment", "--metric", "train_loss", "--format", "csv")
    assert all(r["paper_note"] == "" for r in csv_rows(out))


def test_top5_metric_uses_the_top5_paper_value_or_none(tmp_path, capsys):
    write_run(
        tmp_path / "in",
        "a",
        ["experiment=bireal_imagenet_resnet18"],
        "bireal_imagenet_resnet18",
        max_epochs=256,
        val_acc5=78.0,
        best_val_acc1=55.0,
    )
    _, out, _ = report(capsys, tmp_path / "in", "--metric", "val_acc5", "--format", "csv")
    (row,) = csv_rows(out)
    assert (row["val_acc5_mean"], row["paper"], row["delta"]) == ("78.0", "79.5", "-1.5")
    _, out, _ = report(capsys, tmp_path / "in", "--format", "csv")
    assert csv_rows(out)[0]["paper"] == "56.4"
    write_run(
        tmp_path / "cifar",
        "a",
        ["experiment=rbnn_cifar_resnet20"],
        "rbnn_cifar_resnet20",
        max_epochs=1000,
        val_acc5=99.0,
    )
    _, out, _ = report(capsys, tmp_path / "cifar", "--metric", "val_acc5", "--format", "csv")
    (row,) = csv_rows(out)
    assert row["paper"] == "" and row["paper_note"] == "the paper gives no top-5 value for this preset"
    _, out, _ = report(
        capsys,
        tmp_path / "cifar",
        "--metric",
        "train_loss",
        "--format",
        "csv",
    )
    assert csv_rows(out)[0]["paper"] == ""


def test_unknown_metric_or_by_key_is_one_line_listing_the_valid_ones(tmp_path, capsys):
    write_run(tmp_path, "a", ["quantizer=fp"], quantizer="fp")
    write_run(tmp_path, "b", ["quantizer=xnor"], quantizer="xnor")
    code, out, err = report(capsys, tmp_path, "--metric", "acc")
    assert code == 2 and out == "" and err.count("\n") == 1
    assert "unknown --metric 'acc'; choose one of:" in err and "best_val_acc1" in err and "val_acc5" in err
    code, out, err = report(capsys, tmp_path, "--by", "quantizer.n_in")
    assert code == 2 and out == "" and err.count("\n") == 1
    assert "unknown --by key 'quantizer.n_in': no run has it; choose from:" in err and "quantizer" in err


def test_one_seed_has_a_blank_std(tmp_path, capsys):
    write_run(tmp_path, "a", ["quantizer=fp", "seed=1"], best_val_acc1=91.0)
    write_run(tmp_path, "b", ["quantizer=xnor", "seed=1"], best_val_acc1=80.0)
    write_run(tmp_path, "c", ["quantizer=xnor", "seed=2"], best_val_acc1=82.0)
    _, out, _ = report(capsys, tmp_path, "--format", "csv")
    rows = {r["quantizer"]: r for r in csv_rows(out)}
    assert rows["fp"]["best_val_acc1_std"] == "" and rows["xnor"]["best_val_acc1_std"] == "1.41"
    _, out, _ = report(capsys, tmp_path)
    assert "| fp | 1.00 | 91.00 | 1 |" in out and "| xnor | 1.00 | 81.00 ± 1.41 | 2 |" in out


def test_dead_and_interrupted_runs_have_rows_of_their_own(tmp_path, capsys):
    from binexp.runs.record import RunLock

    write_run(tmp_path, "a", ["seed=1"], best_val_acc1=70.0)
    write_run(tmp_path, "b", ["seed=2"], status="running")  # no lock file: nobody runs it
    live = write_run(tmp_path, "c", ["seed=3"], status="running")
    write_run(tmp_path, "d", ["seed=4"], status="interrupted", error="KeyboardInterrupt: ")
    lock = RunLock(live)
    assert lock.acquire()
    try:
        _, out, _ = report(capsys, tmp_path, "--format", "csv")
    finally:
        lock.release()
    statuses = [r["status"] for r in csv_rows(out)]
    assert statuses[0] == "completed" and len(statuses) == 4
    assert statuses[1].startswith("dead: metrics.json says running but no process holds the run")
    assert statuses[2].startswith("running: last update")
    assert statuses[3] == f"interrupted: KeyboardInterrupt: ; continue with binexp train resume={tmp_path / 'd'}"


def test_size_huffman_and_alpha_columns_only_when_recorded(tmp_path, capsys):
    write_run(tmp_path / "plain", "a", ["quantizer=xnor"])
    _, out, _ = report(capsys, tmp_path / "plain")
    assert "size (KiB)" not in out and "Huffman" not in out and "α final" not in out
    rich = tmp_path / "rich"
    write_run(
        rich, "a", ["seed=1"], model_size_kib=33.5, huffman_bits_per_weight=0.9, alpha_final={"l1": 0.5, "l2": 1.0}
    )
    write_run(
        rich, "b", ["seed=2"], model_size_kib=33.5, huffman_bits_per_weight=0.8, alpha_final={"l1": 0.7, "l2": 1.0}
    )
    _, out, _ = report(capsys, rich, "--by", "quantizer")
    assert "size (KiB)" not in out  # the paper-comparison table stays as it is unless asked
    _, out, _ = report(capsys, rich, "--by", "quantizer", "--alpha", "--columns", "size,huffman,alpha")
    lines = out.splitlines()
    assert lines[0] == (
        "| quantizer | bits/weight | size (KiB) | Huffman bits/w | α final | best_val_acc1 (%) | n | epochs | status |"
    )
    assert lines[2] == "| x | 1.00 | 33.50 | 0.8500 | 0.8000 | 80.00 ± 0.00 | 2 | 1 | completed |"
    assert "| l1 | 0.6000 |" in out and "| l2 | 1.0000 |" in out
    _, out, _ = report(capsys, rich, "--by", "quantizer", "--format", "csv", "--columns", "size,huffman,alpha")
    row = csv_rows(out)[0]
    assert (row["model_size_kib"], row["huffman_bits_per_weight"], row["alpha_final_mean"]) == ("33.5", "0.85", "0.8")


def _event_run(
    root: Path, name: str, steps_per_epoch: int = 4, epochs: int = 3, acc=(10.0, 20.0, 30.0), **metrics
) -> Path:
    from torch.utils.tensorboard import SummaryWriter

    d = write_run(
        root, name, metrics.pop("overrides", []), epochs=epochs, global_step=steps_per_epoch * epochs, **metrics
    )
    w = SummaryWriter(str(d / "tensorboard"))
    for e in range(epochs):
        step = (e + 1) * steps_per_epoch
        w.add_scalar("epoch", e, step)
        w.add_scalar("val/acc1", acc[e], step)
    w.close()
    return d


def test_plot_draws_one_line_per_setting_and_fp_as_reference(tmp_path, capsys):
    from binexp.analysis import report as rep
    from binexp.analysis.plots import acc_vs_bits, val_curves
    from binexp.runs import discovery as runs_mod

    sweep = tmp_path / "sweep"
    for n_in in (8, 16):
        for n_out in (10, 20):
            _event_run(
                sweep,
                f"f{n_in}_{n_out}",
                overrides=[f"quantizer.n_in={n_in}", f"quantizer.n_out={n_out}"],
                quantizer="flexor",
                bits_per_weight=n_in / n_out,
                best_val_acc1=80 + n_in / n_out,
            )
    _event_run(sweep, "fp", overrides=["quantizer=fp"], quantizer="fp", bits_per_weight=32.0, best_val_acc1=92.0)
    code, _, _ = report(capsys, sweep, "--plot", tmp_path / "plots")
    assert (
        code == 0
        and (tmp_path / "plots" / "acc_vs_bits.png").is_file()
        and (tmp_path / "plots" / "val_curves.png").is_file()
    )
    runs = runs_mod.find_runs([str(sweep)])
    by = runs_mod.differing_keys(runs)
    rows = rep.group(runs, by)
    records = rep.table_records(rows, by, "best_val_acc1")
    _, series = acc_vs_bits(records, rows, by, "best_val_acc1", tmp_path / "p2")
    binary = {k: v for k, v in series.items() if "reference" not in k}
    assert set(binary) == {"resnet20, flexor, quantizer.n_out=10", "resnet20, flexor, quantizer.n_out=20"}
    assert binary["resnet20, flexor, quantizer.n_out=10"] == [(0.8, 80.8), (1.6, 81.6)]
    assert binary["resnet20, flexor, quantizer.n_out=20"] == [(0.4, 80.4), (0.8, 80.8)]
    (ref,) = [v for k, v in series.items() if "reference" in k]
    assert ref == [(None, 92.0)]  # a horizontal line, not a point at 32 bits
    _, curves = val_curves(rows, by, tmp_path / "p2")
    assert len(curves) == 5 and all(pts == [(1, 10.0), (2, 20.0), (3, 30.0)] for pts in curves.values())  # x in epochs


def test_no_bits_plot_when_every_row_has_one_bit_width_and_no_fp(tmp_path):
    from binexp.analysis import report as rep
    from binexp.analysis.plots import acc_vs_bits

    write_run(tmp_path, "a", ["quantizer=xnor"], quantizer="xnor")
    write_run(tmp_path, "b", ["quantizer=rbnn"], quantizer="rbnn")
    runs = rep.find_runs([str(tmp_path)])
    rows = rep.group(runs, ["quantizer"])
    records = rep.table_records(rows, ["quantizer"], "best_val_acc1")
    assert acc_vs_bits(records, rows, ["quantizer"], "best_val_acc1", tmp_path / "p") == (None, {})
    assert not (tmp_path / "p").exists()


def test_paths_are_no_columns_absent_keys_are_dashes_and_a_skipped_plot_says_why(tmp_path, capsys):
    """issue 21: a resumed run's `resume=<path>` is not a config column; a key one run lacks reads
    "–", not None; --plot says why acc_vs_bits.png is not drawn."""
    sweep = tmp_path / "sweep"
    write_run(sweep, "0", ["quantizer=xnor", "schedule.lr=0.1"])
    write_run(sweep, "1", ["quantizer=xnor", f"resume={tmp_path / 'elsewhere'}"], best_val_acc1=70.0)
    code, out, _ = report(capsys, sweep, "--plot", tmp_path / "plots")
    assert code == 0
    header, _, *rows = [line for line in out.splitlines() if line.startswith("|")]
    assert "resume" not in header and "schedule.lr" in header
    assert "| – |" in rows[1] or "| – |" in rows[0]
    assert "None" not in out
    assert "acc_vs_bits.png not drawn: every completed binary row has the same bits per weight" in out
    assert (tmp_path / "plots" / "val_curves.png").is_file() and not (tmp_path / "plots" / "acc_vs_bits.png").exists()
