"""Every bad input binexp knows of, through the CLI's entry function: one line on stderr that
starts ``binexp: error:``, the expected exit code, no traceback, and no file created or
changed under the working folder (the output directory, the inputs, everything)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import lightning.pytorch  # noqa: F401 - imported outside capsys: its log handler keeps a live stream
import pytest
import torch

from binexp.cli import main
from binexp.quant.registry import linear_quantizer_names, quantizer_names
from tests.artefacts import fake_checkpoint, fake_run, tree
from tests.conftest import write_cifar_fixture, write_imagefolder_fixture

SYN = ["data=synthetic"]


def ckpt(tmp: Path, *overrides: str) -> Path:
    return fake_checkpoint(tmp / "in" / f"{abs(hash(overrides))}.ckpt", list(overrides))


def corrupt(tmp: Path) -> Path:
    p = tmp / "in" / "corrupt.ckpt"
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(b"PK\x03\x04 truncated")
    return p


def folder(tmp: Path, extra=None) -> Path:
    root = write_imagefolder_fixture(tmp / "in" / "folder", classes=2, per_class=1, size=8)
    if extra:
        extra(root)
    return root


def empty_class(root: Path) -> None:
    for split in ("train", "val"):
        (root / split / "class_x").mkdir()


def text_only_class(root: Path) -> None:
    for split in ("train", "val"):
        (root / split / "class_x").mkdir()
        (root / split / "class_x" / "README.txt").write_text("not an image")


def cifar(tmp: Path, edit=None) -> Path:
    root = write_cifar_fixture(tmp / "in" / "cifar", per_batch=4, test=4)
    if edit:
        edit(root / "cifar-10-batches-py")
    return root


def user_folder(tmp: Path) -> Path:
    (tmp / "in" / "mine").mkdir(parents=True)
    (tmp / "in" / "mine" / "notes.txt").write_text("my notes")
    return tmp / "in" / "mine"


def a_file(tmp: Path) -> Path:
    (tmp / "in").mkdir(parents=True, exist_ok=True)
    (tmp / "in" / "file.txt").write_text("x")
    return tmp / "in" / "file.txt"


def a_run(tmp: Path, **kw) -> Path:
    return fake_run(tmp / "in" / "run", **kw)


def run_without_ckpt(tmp: Path) -> Path:
    run = tmp / "in" / "run"
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "overrides.yaml").write_text("- data=synthetic\n")
    return run


def run_with_corrupt_ckpt(tmp: Path) -> Path:
    run = run_without_ckpt(tmp)
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / "last.ckpt").write_bytes(b"PK\x03\x04 truncated")
    return run


def run_with_overrides(tmp: Path, text: str) -> Path:
    run = a_run(tmp)
    (run / ".hydra" / "overrides.yaml").write_text(text)
    return run


def reports(tmp: Path, texts: list[str]) -> Path:
    root = tmp / "in" / "sweep"
    for i, text in enumerate(texts):
        (root / f"{i}").mkdir(parents=True)
        (root / f"{i}" / "metrics.json").write_text(text)
    return root


GOOD = json.dumps({"status": "completed", "best_val_acc1": 50.0, "overrides": ["seed=0"], "name": "a"})

# (id, args built from tmp, exit code, what the line says)
CASES = [
    # config: groups, keys, values, ranges
    (
        "unknown-quantizer",
        lambda t: ["train", "quantizer=xnr"],
        2,
        "unknown quantizer option 'xnr'; choose one of: " + ", ".join(quantizer_names()),
    ),
    ("unknown-model", lambda t: ["train", "model=resnet21"], 2, "unknown model option 'resnet21'"),
    ("unknown-key", lambda t: ["train", "quantizer.act_scal=K"], 2, "unknown key quantizer.act_scal"),
    ("unknown-trainer-key", lambda t: ["train", "trainer.nope=1"], 2, "unknown key trainer.nope"),
    (
        "unknown-trainer-option",
        lambda t: ["train", "+trainer.max_epoch=1"],
        2,
        "unknown trainer option trainer.max_epoch",
    ),
    ("bad-type", lambda t: ["train", *SYN, "data.batch_size=lots"], 2, "bad value for data.batch_size"),
    (
        "bad-bool",
        lambda t: ["train", *SYN, "quantizer.binary_activations=maybe"],
        2,
        "bad value for quantizer.binary_activations",
    ),
    ("batch-size-0", lambda t: ["train", *SYN, "data.batch_size=0"], 2, "data.batch_size must be > 0"),
    ("lr-0", lambda t: ["train", *SYN, "schedule.lr=0"], 2, "schedule.lr must be > 0"),
    ("max-epochs-0", lambda t: ["train", *SYN, "trainer.max_epochs=0"], 2, "trainer.max_epochs must be >= 1"),
    (
        "bad-choice",
        lambda t: ["train", *SYN, "quantizer.weight_grad=magic"],
        2,
        "choose one of: exact, paper, detached",
    ),
    ("negative-seed", lambda t: ["train", *SYN, "seed=-3"], 2, "seed must be a non-negative integer"),
    ("sweep-without-m", lambda t: ["train", *SYN, "quantizer=fp,xnor"], 2, "is a sweep; fix: add -m"),
    ("bad-value-in-sweep", lambda t: ["train", "-m", *SYN, "schedule.lr=0.1,-1"], 2, "schedule.lr must be > 0"),
    ("unparsable-override", lambda t: ["train", *SYN, "schedule.lr=[0.1"], 2, "cannot parse"),
    ("distill-temperature-0", lambda t: ["train", *SYN, "distill.temperature=0"], 2, "distill.temperature must be > 0"),
    ("distill-weight-2", lambda t: ["train", *SYN, "distill.weight=2"], 2, "distill.weight must be in [0, 1]"),
    ("cifar-variant-7", lambda t: ["train", "data=cifar10", "data.variant=7"], 2, "data.variant must be 10 or 100"),
    # methods
    (
        "flexor-over-one-bit",
        lambda t: ["train", *SYN, "quantizer=flexor", "quantizer.n_in=24"],
        2,
        "quantizer.n_in=24 > n_out=20 stores 1.20 bits per weight",
    ),
    (
        "flexor-over-one-bit-per-stage",
        lambda t: ["train", *SYN, "quantizer=flexor", "quantizer.n_in_per_stage=[19,21,7]"],
        2,
        "quantizer.allow_over_one_bit=true to run it anyway",
    ),
    (
        "flexor-over-one-bit-in-sweep",
        lambda t: ["train", "-m", *SYN, "quantizer=flexor", "quantizer.n_in=12,24"],
        2,
        "n_in=24 > n_out=20",
    ),
    (
        "rbnn-t-min-above-t-max",
        lambda t: ["train", *SYN, "quantizer=rbnn", "quantizer.surrogate_params.t_min=20"],
        2,
        "surrogate_params.t_min=20.0 > t_max=10.0 runs the rbnn schedule backwards; fix: t_min <= t_max",
    ),
    ("flexor-n-tap", lambda t: ["train", *SYN, "quantizer=flexor", "quantizer.n_in=1"], 2, "n_tap=2 exceeds n_in=1"),
    # trainer
    (
        "devices-0",
        lambda t: ["train", *SYN, "trainer.devices=0"],
        2,
        "trainer options rejected by Lightning: `Trainer(devices=0)`",
    ),
    (
        "accelerator-gpu",
        lambda t: ["train", *SYN, "trainer.accelerator=gpu"],
        2,
        "trainer.accelerator=gpu: no gpu available",
    ),
    ("precision-bogus", lambda t: ["train", *SYN, "trainer.precision=bogus"], 2, "Precision 'bogus' is invalid"),
    ("strategy-bogus", lambda t: ["train", *SYN, "+trainer.strategy=bogus"], 2, "invalid strategy name"),
    (
        "limit-train-batches-0",
        lambda t: ["train", *SYN, "trainer.limit_train_batches=0"],
        2,
        "trainer.limit_train_batches=0 trains nothing",
    ),
    ("limit-train-batches-0.0", lambda t: ["train", *SYN, "trainer.limit_train_batches=0.0"], 2, "trains nothing"),
    (
        "limit-train-batches-negative",
        lambda t: ["train", *SYN, "trainer.limit_train_batches=-1"],
        2,
        "invalid value -1 for limit_train_batches",
    ),
    # data
    ("cifar-missing", lambda t: ["train", "data=cifar10", "data.root=/nonexistent/cifar"], 2, "CIFAR-10 not found"),
    (
        "cifar-corrupt-meta",
        lambda t: [
            "train",
            "data=cifar10",
            f"data.root={cifar(t, lambda d: (d / 'batches.meta').write_bytes(b'garbage'))}",
        ],
        2,
        "batches.meta is corrupt",
    ),
    (
        "imagefolder-missing",
        lambda t: ["train", "data=imagefolder", "data.root=/nonexistent/folder"],
        2,
        "no train/ folder",
    ),
    (
        "imagefolder-empty-class",
        lambda t: ["train", "data=imagefolder", f"data.root={folder(t, empty_class)}"],
        2,
        "class_x holds no image files",
    ),
    (
        "imagefolder-text-only-class",
        lambda t: ["train", "data=imagefolder", f"data.root={folder(t, text_only_class)}"],
        2,
        "class_x holds no image files",
    ),
    (
        "imagefolder-wrong-count",
        lambda t: ["train", "data=imagefolder", f"data.root={folder(t)}", "data.num_classes=5"],
        2,
        "found 2 classes",
    ),
    # output directory
    (
        "run-dir-holds-a-run",
        lambda t: ["train", *SYN, f"hydra.run.dir={a_run(t)}"],
        2,
        "already holds a run; fix: continue it with resume=",
    ),
    (
        "run-dir-is-users-folder",
        lambda t: ["train", *SYN, f"hydra.run.dir={user_folder(t)}"],
        2,
        "is an existing folder with other files in it",
    ),
    ("run-dir-under-a-file", lambda t: ["train", *SYN, f"hydra.run.dir={a_file(t)}/run"], 2, "is a file, not a folder"),
    # init_from / distill.teacher
    (
        "init-from-missing",
        lambda t: ["train", *SYN, "init_from=/nope"],
        2,
        "init_from: no checkpoint at /nope; fix: pass init_from=",
    ),
    ("init-from-corrupt", lambda t: ["train", *SYN, f"init_from={corrupt(t)}"], 2, "init_from: checkpoint"),
    (
        "init-from-other-model",
        lambda t: ["train", *SYN, "model=resnet32", f"init_from={ckpt(t)}"],
        2,
        "trained with model=resnet20, this run uses model=resnet32",
    ),
    (
        "init-from-other-class-count",
        lambda t: ["train", *SYN, f"init_from={ckpt(t, 'data.num_classes=3')}"],
        2,
        "net.linear.weight has shape (3, 64)",
    ),
    (
        "init-from-run-without-ckpt",
        lambda t: ["train", *SYN, f"init_from={run_without_ckpt(t)}"],
        2,
        "init_from: no checkpoint at",
    ),
    (
        "teacher-missing",
        lambda t: ["train", *SYN, "distill.teacher=/nope"],
        2,
        "distill.teacher: no checkpoint at /nope; fix: pass distill.teacher=",
    ),
    ("teacher-corrupt", lambda t: ["train", *SYN, f"distill.teacher={corrupt(t)}"], 2, "distill.teacher: checkpoint"),
    (
        "teacher-other-class-count",
        lambda t: ["train", *SYN, f"distill.teacher={ckpt(t, 'data.num_classes=3')}"],
        2,
        "was trained on 3 classes, the data has 10",
    ),
    # callbacks
    (
        "callback-target-not-allowed",
        lambda t: ["train", *SYN, "callbacks.lr_monitor._target_=os.getcwd"],
        2,
        "callbacks.lr_monitor: _target_='os.getcwd' is not allowed",
    ),
    (
        "callback-bad-field",
        lambda t: ["train", *SYN, "+callbacks.lr_monitor.nope=1"],
        2,
        "callbacks.lr_monitor cannot be built",
    ),
    # resume
    ("resume-missing", lambda t: ["train", "resume=/nope/run"], 2, "no run directory at"),
    ("resume-not-a-run", lambda t: ["train", f"resume={user_folder(t)}"], 2, "is not a binexp run directory"),
    ("resume-without-ckpt", lambda t: ["train", f"resume={run_without_ckpt(t)}"], 2, "nothing to resume"),
    ("resume-corrupt-ckpt", lambda t: ["train", f"resume={run_with_corrupt_ckpt(t)}"], 2, "is corrupt"),
    ("resume-with-m", lambda t: ["train", "-m", f"resume={a_run(t)}"], 2, "resume= continues one run; fix: drop -m"),
    (
        "resume-other-override",
        lambda t: ["train", f"resume={a_run(t)}", "quantizer=fp"],
        2,
        "only trainer.* overrides may be added",
    ),
    (
        "resume-overrides-not-a-list",
        lambda t: ["train", f"resume={run_with_overrides(t, 'a: 1')}"],
        2,
        "is not a list of overrides",
    ),
    (
        "resume-injected-target",
        lambda t: ["train", f"resume={a_run(t, saved=['data=synthetic', '+callbacks.x._target_=os.getcwd'])}"],
        2,
        "_target_='os.getcwd' is not allowed",
    ),
    (
        "resume-hydra-override",
        lambda t: ["train", f"resume={a_run(t, saved=['data=synthetic', 'hydra.job.chdir=true'])}"],
        2,
        "changes Hydra itself",
    ),
    # export
    ("export-missing", lambda t: ["export", str(t / "nope"), str(t / "out.flexor")], 2, "export: no checkpoint at"),
    (
        "export-corrupt",
        lambda t: ["export", str(corrupt(t)), str(t / "out.flexor")],
        2,
        "export: cannot rebuild a run from",
    ),
    ("export-not-flexor", lambda t: ["export", str(ckpt(t)), str(t / "out.flexor")], 2, "has no FleXOR layers"),
    ("export-existing-out", lambda t: ["export", str(ckpt(t)), str(a_file(t))], 2, "already exists"),
    (
        "export-missing-out-dir",
        lambda t: ["export", str(ckpt(t)), str(t / "nodir" / "out.flexor")],
        2,
        "export: the folder",
    ),
    # report
    ("report-missing", lambda t: ["report", str(t / "nope")], 2, "does not exist"),
    ("report-no-runs", lambda t: ["report", str(user_folder(t))], 2, "no runs (metrics.json)"),
    (
        "report-corrupt-metrics",
        lambda t: ["report", str(reports(t, ['{"status": "compl']))],
        2,
        "metrics.json is unreadable",
    ),
    (
        "report-corrupt-beside-good",
        lambda t: ["report", str(reports(t, [GOOD, "\x00\xff"]))],
        2,
        "1/metrics.json is unreadable",
    ),
    ("report-metrics-not-an-object", lambda t: ["report", str(reports(t, ["[1, 2]"]))], 2, "not an object"),
    # verbs
    ("unknown-verb", lambda t: ["trian"], 2, "unknown verb 'trian'"),
    ("summary-bad-option", lambda t: ["summary", "quantizer=xnr"], 2, "unknown quantizer option 'xnr'"),
    # methods whose papers and official code binarize convolutions only, on a model with binarized
    # linear layers: refused before any training or run directory
    *(
        (
            f"no-linear-rule-{q}",
            lambda t, q=q: ["train", "model=vit_cifar", f"quantizer={q}", "model.depth=1", *SYN],
            2,
            f"quantizer {q} has no linear rule, and this model binarizes linear layers; "
            f"fix: quantizer=<one of: {', '.join(linear_quantizer_names())}>, or a convolution-only model",
        )
        for q in ("adabin",)
    ),
]


# already refused before this catalogue (and tested through a real process in test_train_cli.py,
# test_two_stage.py, test_flexor_train.py, test_report.py, tests/config): in the slow selection here
ALREADY_COVERED = {
    "unknown-quantizer",
    "unknown-model",
    "unknown-key",
    "unknown-trainer-key",
    "unknown-trainer-option",
    "bad-type",
    "bad-bool",
    "batch-size-0",
    "lr-0",
    "max-epochs-0",
    "bad-choice",
    "negative-seed",
    "sweep-without-m",
    "bad-value-in-sweep",
    "cifar-missing",
    "imagefolder-missing",
    "run-dir-holds-a-run",
    "resume-missing",
    "resume-without-ckpt",
    "resume-corrupt-ckpt",
    "init-from-other-model",
    "export-missing",
    "export-corrupt",
    "export-existing-out",
    "report-missing",
    "report-no-runs",
    "unknown-verb",
}


@pytest.mark.parametrize(
    "make,code,expected",
    [
        pytest.param(
            *c[1:],
            id=c[0],
            marks=([pytest.mark.slow] if c[0] in ALREADY_COVERED else [])
            + (
                [pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")]
                if c[0] == "accelerator-gpu"
                else []
            ),
        )
        for c in CASES
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(make, code, expected, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BINEXP_VERB", "")
    monkeypatch.setattr(sys, "argv", ["binexp"])
    args = make(tmp_path)
    before = tree(tmp_path)
    capsys.readouterr()
    try:
        got = main(args)
    except SystemExit as e:  # a job that started would exit through Hydra: a failure of this test
        got = e.code
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert "Traceback" not in err, err
    assert got == code and len(lines) == 1 and lines[0].startswith("binexp: error: "), (got, err)
    assert expected in lines[0], lines[0]
    assert tree(tmp_path) == before


def test_catalogue_size():
    assert len(CASES) >= 60
