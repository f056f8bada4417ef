"""``binexp evaluate``: a trained run on its own data, another split, CIFAR-10-C, and bad input,
through the CLI's entry function. The run's training record is never touched (bytes compared)."""

from __future__ import annotations

import hashlib
import json
import statistics
import sys
from pathlib import Path

import lightning.pytorch  # noqa: F401 - imported outside capsys: its log handler keeps a live stream
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from binexp.cli import main
from binexp.data.cifar10c import CORRUPTIONS
from tests.artefacts import fake_run, tree
from tests.conftest import QUICK, read_metrics, write_cifar10c_fixture

TINY = [
    "data=synthetic",
    "data.train_size=64",
    "data.val_size=100",
    "data.batch_size=32",
    "data.eval_batch_size=64",
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=2",
    "callbacks.layer_diagnostics=null",
    *QUICK,
]


@pytest.fixture
def cli(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BINEXP_VERB", "")
    monkeypatch.setattr(sys, "argv", ["binexp"])
    return main


def digests(run: Path) -> dict[str, str]:
    """Every file of the run outside evaluations/, by content."""
    return {
        str(p.relative_to(run)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(run.rglob("*"))
        if p.is_file() and "evaluations" not in p.relative_to(run).parts
    }


def by_hand(run: Path, images: torch.Tensor, labels: torch.Tensor) -> tuple[float, float]:
    """Top-1 (%) and mean cross-entropy of the run's last checkpoint, without Lightning."""
    from binexp.data.augment import IMAGENET_MEAN, IMAGENET_STD, normalize_uint8
    from binexp.lit.restore import build_module
    from binexp.runs import checkpoint

    path = checkpoint.locate(run, "evaluate")
    module = build_module(checkpoint.load(path, "evaluate"), path, "evaluate")
    with torch.no_grad():
        logits = module(normalize_uint8(images, IMAGENET_MEAN, IMAGENET_STD))
    return float((logits.argmax(1) == labels).float().mean() * 100), float(F.cross_entropy(logits, labels))


def test_evaluate_a_finished_run_reproduces_its_record_and_touches_nothing(cli, tmp_path, capsys):
    from binexp.data.synthetic import make_synthetic

    run = tmp_path / "run"
    assert cli(["train", *TINY, "quantizer=xnor", f"hydra.run.dir={run}"]) == 0
    before = digests(run)
    capsys.readouterr()
    assert cli(["evaluate", str(run)]) == 0
    out = capsys.readouterr().out
    rec = json.loads((run / "evaluations" / "synthetic.json").read_text())
    m = read_metrics(run)
    # last.ckpt on the run's own validation set: the numbers training recorded for its last epoch
    assert rec["images"] == 100 and rec["split"] == "val" and rec["epochs"] == 1
    assert rec["acc1"] == pytest.approx(m["val_acc1"], abs=1e-4)
    assert rec["acc5"] == pytest.approx(m["val_acc5"], abs=1e-4)
    images, labels = make_synthetic(100, 10, 32, 1.0, 1)  # the synthetic set's val split (seed + 1)
    acc, loss = by_hand(run, images, labels)
    assert rec["acc1"] == pytest.approx(acc, abs=1e-4) and rec["loss"] == pytest.approx(loss, abs=1e-5)
    counts = np.bincount(labels.numpy(), minlength=10)
    assert len(rec["per_class_acc1"]) == 10
    assert np.dot(rec["per_class_acc1"], counts) / 100 == pytest.approx(rec["acc1"], abs=1e-3)
    assert f"top-1 {rec['acc1']:.2f} %" in out and "wrote" in out

    # another split and another dataset (a data override), from the .ckpt itself: next to the run
    assert cli(["evaluate", str(run / "checkpoints" / "last.ckpt"), "--split", "train"]) == 0
    train = json.loads((run / "evaluations" / "synthetic_train.json").read_text())
    images, labels = make_synthetic(64, 10, 32, 1.0, 0)
    assert train["images"] == 64 and train["acc1"] == pytest.approx(by_hand(run, images, labels)[0], abs=1e-4)
    assert cli(["evaluate", str(run), "data.noise=3.0", "data.val_size=40", "--name", "noisy"]) == 0
    noisy = json.loads((run / "evaluations" / "noisy.json").read_text())
    images, labels = make_synthetic(40, 10, 32, 3.0, 1)
    assert noisy["images"] == 40 and noisy["data"]["noise"] == 3.0
    assert noisy["acc1"] == pytest.approx(by_hand(run, images, labels)[0], abs=1e-4)
    assert digests(run) == before  # metrics.json, checkpoints, .hydra, events: byte for byte
    assert sorted(p.name for p in (run / "evaluations").iterdir()) == [
        "noisy.json",
        "synthetic.json",
        "synthetic_train.json",
    ]


def test_cifar10c_table_on_a_generated_release(cli, tmp_path, capsys):
    """Every corruption x severity of a CIFAR-10-C-format fixture, one table: each cell is the
    network's accuracy on those rows, mCA their mean, drop = clean - mCA."""
    run = fake_run(tmp_path / "run")
    root = write_cifar10c_fixture(tmp_path / "CIFAR-10-C", per_severity=8)
    before = digests(run)
    capsys.readouterr()
    assert cli(["evaluate", str(run), "data=cifar10c", f"data.root={root}"]) == 0
    out = capsys.readouterr().out
    rec = json.loads((run / "evaluations" / "cifar10c.json").read_text())
    assert list(rec["corruptions"]) == list(CORRUPTIONS)
    assert all(list(sev) == ["1", "2", "3", "4", "5"] for sev in rec["corruptions"].values())
    cells = [s["acc1"] for sev in rec["corruptions"].values() for s in sev.values()]
    assert len(cells) == 75 and all(s["images"] == 8 for sev in rec["corruptions"].values() for s in sev.values())
    assert rec["mean_corruption_acc1"] == pytest.approx(statistics.fmean(cells), abs=1e-3)
    assert rec["drop"] == pytest.approx(rec["clean"]["acc1"] - rec["mean_corruption_acc1"], abs=1e-3)
    assert rec["clean"]["images"] == 512 and rec["clean_data"] == "synthetic"  # the run's own val set
    labels = torch.from_numpy(np.load(root / "labels.npy").astype(np.int64))
    for corruption, severity in (("gaussian_noise", 1), ("fog", 3), ("jpeg_compression", 5)):
        x = torch.from_numpy(np.load(root / f"{corruption}.npy")).permute(0, 3, 1, 2).contiguous()
        rows = slice(8 * (severity - 1), 8 * severity)
        acc, loss = by_hand(run, x[rows], labels[rows])
        assert rec["corruptions"][corruption][str(severity)]["acc1"] == pytest.approx(acc, abs=1e-4)
        assert rec["corruptions"][corruption][str(severity)]["loss"] == pytest.approx(loss, abs=1e-5)
    lines = out.splitlines()
    assert sum(line.startswith(tuple(f"| {c} |" for c in CORRUPTIONS)) for line in lines) == 15
    assert f"mCA {rec['mean_corruption_acc1']:.2f} %" in out and f"drop {rec['drop']:.2f} points" in out
    assert digests(run) == before


def test_cifar10c_subset_of_corruptions_and_severities(cli, tmp_path, capsys):
    run = fake_run(tmp_path / "run", ["data.val_size=16"])
    root = write_cifar10c_fixture(tmp_path / "c", per_severity=4, corruptions=("fog", "speckle_noise"))
    args = ["evaluate", str(run), "data=cifar10c", f"data.root={root}", "data.corruptions=[fog,speckle_noise]"]
    assert cli([*args, "data.severities=[2,5]"]) == 0
    rec = json.loads((run / "evaluations" / "cifar10c.json").read_text())
    assert {c: list(s) for c, s in rec["corruptions"].items()} == {"fog": ["2", "5"], "speckle_noise": ["2", "5"]}
    # mCA averages the benchmark's 15 only: here fog's two severities; the extra is shown, not averaged
    fog = [rec["corruptions"]["fog"][k]["acc1"] for k in ("2", "5")]
    assert rec["mean_corruption_acc1"] == pytest.approx(statistics.fmean(fog), abs=1e-3)
    assert rec["data"]["normalize"] == "imagenet"  # the run's statistics


def missing_file(t: Path) -> list[str]:
    root = write_cifar10c_fixture(t / "in" / "c", per_severity=2, corruptions=("fog",))
    return ["evaluate", str(fake_run(t / "in" / "run")), "data=cifar10c", f"data.root={root}"]


def pickled_labels(t: Path) -> list[str]:
    root = write_cifar10c_fixture(t / "in" / "c", per_severity=2)
    np.save(root / "labels.npy", np.array([{"a": 1}] * 10, dtype=object), allow_pickle=True)
    return ["evaluate", str(fake_run(t / "in" / "run")), "data=cifar10c", f"data.root={root}"]


def symlinked_file(t: Path) -> list[str]:
    root = write_cifar10c_fixture(t / "in" / "c", per_severity=2)
    (root / "fog.npy").rename(t / "in" / "elsewhere.npy")
    (root / "fog.npy").symlink_to(t / "in" / "elsewhere.npy")
    return ["evaluate", str(fake_run(t / "in" / "run")), "data=cifar10c", f"data.root={root}"]


def oversized_labels(t: Path) -> list[str]:
    root = write_cifar10c_fixture(t / "in" / "c", per_severity=2)
    np.save(root / "labels.npy", np.zeros(60000, dtype=np.int64))
    return ["evaluate", str(fake_run(t / "in" / "run")), "data=cifar10c", f"data.root={root}"]


def wrong_shape(t: Path) -> list[str]:
    root = write_cifar10c_fixture(t / "in" / "c", per_severity=2)
    np.save(root / "fog.npy", np.zeros((7, 32, 32, 3), dtype=np.uint8))
    return ["evaluate", str(fake_run(t / "in" / "run")), "data=cifar10c", f"data.root={root}"]


def run_arg(t: Path, *extra: str) -> list[str]:
    return ["evaluate", str(fake_run(t / "in" / "run")), *extra]


CASES = [
    ("no-checkpoint", lambda t: ["evaluate", str(t)], "evaluate: no checkpoint at"),
    ("not-a-checkpoint", lambda t: ["evaluate", str(t / "nope.ckpt")], "evaluate: no checkpoint at"),
    (
        "class-count",
        lambda t: run_arg(t, "data.num_classes=5"),
        "was trained on 10 classes, data=synthetic has 5",
    ),
    ("unknown-data-option", lambda t: run_arg(t, "data=cifar11"), "unknown data option 'cifar11'"),
    ("unknown-data-key", lambda t: run_arg(t, "data.nois=2"), "data.nois is not a key of the run's data config"),
    ("not-a-data-override", lambda t: run_arg(t, "quantizer=fp"), "'quantizer=fp' is not a data override"),
    ("bad-name", lambda t: run_arg(t, "--name", "../x"), "is not a plain file name"),
    (
        "release-missing",
        lambda t: run_arg(t, "data=cifar10c", f"data.root={t / 'none'}"),
        "CIFAR-10-C not found: no folder in",
    ),
    ("corruption-file-missing", missing_file, "CIFAR-10-C not found: no gaussian_noise.npy in"),
    ("pickled-labels", pickled_labels, "is not a plain numpy array"),
    ("symlinked-file", symlinked_file, "is a symbolic link (not followed)"),
    ("oversized-file", oversized_labels, "more than the 404096 a release file holds"),
    ("wrong-shape", wrong_shape, "has shape (7, 32, 32, 3), expected (5 x N, 32, 32, 3)"),
    ("unknown-corruption", lambda t: run_arg(t, "data=cifar10c", "data.corruptions=[fgo]"), "unknown 'fgo'"),
    ("train-on-cifar10c", lambda t: run_arg(t, "data=cifar10c", "--split", "train"), "drop --split"),
    (
        "binexp-train-on-cifar10c",
        lambda t: ["train", "data=cifar10c", f"data.root={write_cifar10c_fixture(t / 'in' / 'c', per_severity=2)}"],
        "data=cifar10c is an evaluation set (no training split)",
    ),
]


@pytest.mark.parametrize("make,expected", [pytest.param(*c[1:], id=c[0]) for c in CASES])
def test_bad_input_is_one_line_and_writes_nothing(make, expected, cli, tmp_path, capsys):
    args = make(tmp_path)
    before = tree(tmp_path)
    capsys.readouterr()
    got = cli(args)
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert "Traceback" not in err, err
    assert got == 2 and len(lines) == 1 and lines[0].startswith("binexp: error: "), (got, err)
    assert expected in lines[0], lines[0]
    assert tree(tmp_path) == before


def test_tables_script_puts_methods_side_by_side(cli, tmp_path, capsys):
    """scripts/tables.py cifar10c: evaluates the runs of a sweep that lack cifar10c.json, then one
    column per method with clean, each corruption's mean, mCA and drop (the runs' own numbers)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
    import tables

    sweep = tmp_path / "sweep"
    for i, q in enumerate(("fp", "xnor")):
        fake_run(sweep / str(i), [f"quantizer={q}", "data.val_size=16"])
    root = write_cifar10c_fixture(tmp_path / "c", per_severity=4, corruptions=("fog", "snow"))
    extra = [f"data.root={root}", "data.corruptions=[fog,snow]", "data.severities=[1,5]"]
    assert cli(["evaluate", str(sweep / "0"), "data=cifar10c", *extra]) == 0  # the other one tables.py evaluates
    capsys.readouterr()
    assert tables.main(["cifar10c", str(sweep), *extra]) == 0
    out = capsys.readouterr().out
    recs = [json.loads((sweep / str(i) / "evaluations" / "cifar10c.json").read_text()) for i in (0, 1)]
    assert [r["quantizer"] for r in recs] == ["fp", "xnor"]
    assert "wrote " + str(sweep / "1" / "evaluations" / "cifar10c.json") in out
    table = out.split("## BiBench robustness track")[1]
    lines = [line for line in table.splitlines() if line.startswith("| ")]
    assert lines[0] == "| top-1 (%) | fp | xnor |"
    cells = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:4]] for line in lines[1:]}
    assert cells["clean"] == [f"{r['clean']['acc1']:.2f}" for r in recs]
    assert cells["fog"] == [f"{r['per_corruption_acc1']['fog']:.2f}" for r in recs]
    assert cells["**mCA**"] == [f"{r['mean_corruption_acc1']:.2f}" for r in recs]
    assert cells["**drop (points)**"] == [f"{r['drop']:.2f}" for r in recs]
    assert list(cells) == ["clean", "fog", "snow", "**mCA**", "**drop (points)**"]


def _quantizers() -> list[str]:
    from binexp.quant.registry import QUANTIZERS

    return sorted(QUANTIZERS)


@pytest.mark.slow
@pytest.mark.parametrize("quantizer", _quantizers())
def test_evaluate_reproduces_the_last_epoch_of_every_method(quantizer, cli, tmp_path, capsys):
    """Whatever a method keeps between epochs (RBNN's t and k, FleXOR's S_tanh, ...) travels in the
    checkpoint: evaluating last.ckpt gives the accuracies the run recorded for its last epoch."""
    run = tmp_path / "run"
    assert cli(["train", *TINY, "trainer.max_epochs=2", f"quantizer={quantizer}", f"hydra.run.dir={run}"]) == 0
    assert cli(["evaluate", str(run)]) == 0
    rec = json.loads((run / "evaluations" / "synthetic.json").read_text())
    m = read_metrics(run)
    assert (rec["acc1"], rec["acc5"]) == (
        pytest.approx(m["val_acc1"], abs=1e-4),
        pytest.approx(m["val_acc5"], abs=1e-4),
    )
