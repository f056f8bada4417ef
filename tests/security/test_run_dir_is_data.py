"""A run directory is data (issue 17): what ``binexp train resume=``, ``report``, ``status`` and
``plot`` read from it can neither run code nor make binexp write outside it, hang, or fill the
memory; and a bad value on the command line is one ``binexp: error:`` line, exit 2, nothing
written. Each crafted artefact is first shown to do its harm through the plain (unsafe) path,
so a test here fails if its artefact is harmless."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import lightning.pytorch  # noqa: F401 - imported outside capsys: its log handler keeps a live stream
import pytest
from omegaconf import OmegaConf

from binexp.errors import BinexpError
from tests.artefacts import evil_checkpoint, fake_run, tree

SYN = ["data=synthetic"]


def one_line(code: int, lines: list[str], expected: str) -> None:
    assert code == 2 and len(lines) == 1 and lines[0].startswith("binexp: error: "), (code, lines)
    assert expected in lines[0], lines[0]


# ---------------------------------------------------------------------------------------------
# values on the command line: each once a traceback after the run directory existed, or silent
# nonsense (a run that trains on something else than asked)

VALUES = [
    (["quantizer=flexor", "quantizer.n_in_per_stage=[4,4]"], "n_in_per_stage=[4, 4] has no entry for stage 2"),
    (["schedule.lr=inf"], "bad value for schedule.lr: inf is not a finite number"),
    (["trainer.max_epochs=1.5"], "bad value for trainer.max_epochs: 1.5 is not a whole number"),
    (["data.num_classes=1"], "has 1 class; classification needs at least 2"),
    (["model.width=inf"], "bad value for model.width: inf is not a finite number"),
    (["seed=99999999999999999999"], "seed must be a non-negative integer (at most 4294967295)"),
    (["trainer.check_val_every_n_epoch=0"], "trainer.check_val_every_n_epoch must be >= 1, got 0"),
    (["compile=maybe"], "compile must be true or false, got 'maybe'"),
    (["trainer.gradient_clip_val=-1"], "trainer.gradient_clip_val must be >= 0, got -1"),
    (["data.noise=nan"], "bad value for data.noise: nan is not a finite number"),
    (["data.image_size=1"], "images of 1x1 pixels are too small for model=resnet20"),
    (["hydra.run.dir=/proc/x/run"], "cannot write to /proc"),
    # a name is one folder: "${oc.env:HOME}" made outputs/runs/<time>_/root, a nested folder
    (["name=../../escape"], "name='../../escape' names the run directory"),
]


@pytest.mark.parametrize("extra,expected", VALUES, ids=[v[0][-1].split("=")[0] for v in VALUES])
def test_bad_value_is_one_line_and_leaves_nothing(cli, tmp_path, extra, expected):
    before = tree(tmp_path)
    code, lines = cli(["train", *SYN, *extra])
    one_line(code, lines, expected)
    assert tree(tmp_path) == before  # no outputs/, no run directory


def test_image_size_bound_is_the_smallest_that_works(cli, tmp_path):
    code, lines = cli(["train", *SYN, "data.image_size=2"])
    one_line(code, lines, "fix: data.image_size >= 4")
    from omegaconf import open_dict

    from binexp.config import validate
    from binexp.preflight import check_model, compose

    for size in (3, 4):  # resnet20 halves twice: 3 -> 2 -> 1 still gives each strided conv its stride
        cfg = compose([*SYN, f"data.image_size={size}"])
        with open_dict(cfg):
            cfg.pop("hydra")
        check_model(validate(cfg), 10)


def test_the_last_group_choice_is_the_one_named(cli):
    """``data=cifar10 data=synthetic``: synthetic is in force, and the line says so."""
    code, lines = cli(["train", "data=cifar10", "data=synthetic", "data.root=/x"])
    one_line(code, lines, "unknown key data.root for data=synthetic: root is a key of data=cifar10")


# ---------------------------------------------------------------------------------------------
# metrics.json: report, status and plot read it as data of a known shape


def sweep_with_metrics(tmp: Path, content: bytes) -> Path:
    job = tmp / "sweep" / "0_seed=0"
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text("- seed=0\n")
    (job / "metrics.json").write_bytes(content)
    return tmp / "sweep"


GOOD = {"status": "completed", "best_val_acc1": 50.0, "val_acc1": 50.0, "epochs": 1, "overrides": ["seed=0"]}
METRICS = {
    "nested-200k": (b"[" * 200_000 + b"]" * 200_000, "nested too deeply"),
    "json-list": (b"[1, 2]", "holds a JSON list, not an object"),
    "binary": (bytes(range(256)) * 4, "is not UTF-8 text"),
    "string-accuracy": (
        json.dumps({**GOOD, "best_val_acc1": "high"}).encode(),
        "best_val_acc1 is 'high', not a number",
    ),
}


def test_the_metrics_payloads_are_real():
    """Each breaks the plain read that report, status and plot did before."""
    with pytest.raises(RecursionError):
        json.loads(METRICS["nested-200k"][0])
    assert isinstance(json.loads(METRICS["json-list"][0]), list)
    with pytest.raises(UnicodeDecodeError):
        METRICS["binary"][0].decode()
    with pytest.raises(ValueError):
        f"{json.loads(METRICS['string-accuracy'][0])['best_val_acc1']:.2f}"


@pytest.mark.parametrize("verb", ["report", "status", "plot"])
@pytest.mark.parametrize("case", list(METRICS))
def test_damaged_metrics_is_one_line(cli, tmp_path, verb, case):
    content, expected = METRICS[case]
    sweep = sweep_with_metrics(tmp_path, content)
    args = {"report": ["report", str(sweep)], "status": ["status", str(sweep)], "plot": ["plot", str(sweep), "alpha"]}
    before = tree(tmp_path)
    code, lines = cli(args[verb])
    one_line(code, lines, expected)
    assert f"{verb}: " in lines[0] and "metrics.json" in lines[0]
    assert tree(tmp_path) == before


@pytest.mark.parametrize("verb", ["report", "status", "plot"])
def test_metrics_json_as_fifo_or_dev_zero_does_not_hang(cli, tmp_path, verb):
    """A FIFO blocks a plain open until a writer comes; /dev/zero never ends. Both are refused
    before a byte is read (the test would hang, or fill the memory, otherwise)."""
    sweep = sweep_with_metrics(tmp_path, b"{}")
    job = sweep / "0_seed=0"
    (job / "metrics.json").unlink()
    (job / "metrics.json").symlink_to("/dev/zero")
    args = {"report": ["report", str(sweep)], "status": ["status", str(sweep)], "plot": ["plot", str(sweep), "alpha"]}
    code, lines = cli(args[verb])
    one_line(code, lines, "is a symbolic link")
    (job / "metrics.json").unlink()
    os.mkfifo(job / "metrics.json")
    code, lines = cli(args[verb])
    one_line(code, lines, "is not a regular file")


# ---------------------------------------------------------------------------------------------
# writes through a link: .lock, train.log, figures/


def test_lock_link_payload_is_real(tmp_path):
    """The lock as binexp opened it before: through the link, truncating its target."""
    target = tmp_path / "precious.txt"
    target.write_text("my thesis")
    (tmp_path / ".lock").symlink_to(target)
    fd = os.open(tmp_path / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    os.ftruncate(fd, 0)
    os.close(fd)
    assert target.read_text() == ""


def test_lock_is_never_taken_through_a_link_or_fifo(tmp_path):
    from binexp.runs.record import RunLock, is_held

    target = tmp_path / "precious.txt"
    target.write_text("my thesis")
    run = tmp_path / "run"
    run.mkdir()
    (run / ".lock").symlink_to(target)
    with pytest.raises(BinexpError, match="is a symbolic link"):
        RunLock(run).acquire()
    assert not is_held(run) and target.read_text() == "my thesis"
    (run / ".lock").unlink()
    os.mkfifo(run / ".lock")
    with pytest.raises(BinexpError, match="is not a regular file"):
        RunLock(run).acquire()
    assert not is_held(run)


def test_train_log_is_never_appended_through_a_link(tmp_path):
    from binexp.safeio import NoFollowFileHandler

    target = tmp_path / "precious.txt"
    target.write_text("my thesis")
    with open(tmp_path / "plain.log", "w"):
        pass
    (tmp_path / "train.log").symlink_to(target)
    plain = logging.FileHandler(tmp_path / "train.log")  # what Hydra's job logging used: appends to the target
    plain.emit(logging.makeLogRecord({"msg": "appended"}))
    plain.close()
    assert target.read_text() == "my thesisappended\n"
    target.write_text("my thesis")
    with pytest.raises(BinexpError, match="is a symbolic link"):
        NoFollowFileHandler(tmp_path / "train.log")
    assert target.read_text() == "my thesis"
    assert OmegaConf.load(Path("conf/train.yaml")).hydra.job_logging.handlers.file["class"] == (
        "binexp.safeio.NoFollowFileHandler"
    )


@pytest.mark.parametrize("name", [".lock", "train.log", "metrics.json"])
def test_resume_refuses_a_run_whose_files_are_links(cli, tmp_path, name):
    target = tmp_path / "precious.txt"
    target.write_text("my thesis")
    run = fake_run(tmp_path / "run")
    (run / name).symlink_to(target)
    before = tree(tmp_path)
    code, lines = cli(["train", f"resume={run}"])
    one_line(code, lines, f"{run / name} is a symbolic link")
    assert tree(tmp_path) == before and target.read_text() == "my thesis"


def test_plot_never_writes_through_a_figures_link(cli, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    sweep = sweep_with_metrics(tmp_path, json.dumps(GOOD).encode())
    (sweep / "figures").symlink_to(elsewhere)
    (sweep / "figures" / "probe.png").write_bytes(b"x")  # a plain write lands outside the run directory
    assert (elsewhere / "probe.png").exists()
    (elsewhere / "probe.png").unlink()
    code, lines = cli(["plot", str(sweep), "alpha"])
    one_line(code, lines, "figures is a symbolic link")
    assert list(elsewhere.iterdir()) == []


def test_plot_out_a_file(cli, tmp_path):
    sweep = sweep_with_metrics(tmp_path, json.dumps(GOOD).encode())
    (tmp_path / "notes.txt").write_text("mine")
    before = tree(tmp_path)
    code, lines = cli(["plot", str(sweep), "alpha", "--out", str(tmp_path / "notes.txt")])
    one_line(code, lines, "notes.txt is a file, not a folder")
    assert tree(tmp_path) == before


def test_a_figure_path_that_is_a_link_is_replaced_not_written_through(tmp_path):
    from binexp.analysis.plots import _plt, _save

    target = tmp_path / "precious.txt"
    target.write_text("my thesis")
    (tmp_path / "figures").mkdir()
    (tmp_path / "figures" / "alpha.png").symlink_to(target)
    fig = _plt().figure()
    _save(fig, tmp_path / "figures" / "alpha.png")
    assert target.read_text() == "my thesis"
    assert not (tmp_path / "figures" / "alpha.png").is_symlink()
    assert (tmp_path / "figures" / "alpha.png").read_bytes()[:4] == b"\x89PNG"


# ---------------------------------------------------------------------------------------------
# saved overrides: replayed only as known keys with plain values


def test_the_interpolation_payload_is_real(tmp_path):
    """What Hydra did with a saved ``${oc.create:{_target_: torch.load, ...}}``: instantiate it,
    unpickling the file next to it."""
    from hydra.utils import instantiate

    marker = tmp_path / "fired"
    evil = evil_checkpoint(tmp_path / "payload.pt", marker)
    cfg = OmegaConf.create({"cb": f"${{oc.create:{{_target_: torch.load, f: '{evil}', weights_only: false}}}}"})
    instantiate(cfg.cb)
    assert marker.exists()


def test_the_env_payload_is_real(monkeypatch):
    monkeypatch.setenv("BINEXP_TEST_SECRET", "hunter2")
    assert OmegaConf.create({"name": "${oc.env:BINEXP_TEST_SECRET}"}).name == "hunter2"


def test_the_alias_payload_is_real():
    """Nine lines of nested aliases: 10^6 nodes once OmegaConf copies them (the test file uses
    9 levels: 10^9)."""
    import yaml

    small = (
        "a: &a [x,x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
    )
    expanded = OmegaConf.to_container(OmegaConf.create(yaml.safe_load(small)))
    assert sum(len(y) for x in expanded["c"] for y in x) == 1000


LAUGHS = "".join(f"- &l{i} [{', '.join([f'*l{i - 1}'] * 10) if i else ', '.join(['lol'] * 10)}]\n" for i in range(9))

SAVED = {
    "oc-create-torch-load": (
        [
            "callbacks.lr_monitor.logging_interval=\"${{oc.create:{{_target_:torch.load,f:'{evil}',weights_only:false}}}}\""
        ],
        "is not a plain value",
    ),
    "oc-env-secret": (["name=${{oc.env:BINEXP_TEST_SECRET}}"], "is not a plain value"),
    "group-option-path": (["experiment=../../../../{run}/.hydra/notes"], "is not a registered experiment option"),
    "group-option-absolute": (["experiment={run}/.hydra/notes"], "is not a registered experiment option"),
    "added-callback": (["+callbacks.k._target_=binexp.lit.killpoint.KillAt", "+callbacks.k.step=1"], "_target_"),
    "added-key": (["+callbacks.k.every_n_epochs=1"], "adds a key"),
    "hydra-callbacks": (["hydra.callbacks.x._target_=builtins.open"], "changes Hydra itself"),
    "hydra-group": (["hydra/launcher=basic"], "changes Hydra itself"),
    "deletion": (["~callbacks.lr_monitor"], "deletes a key"),
    "unknown-top-level": (["evil=1"], "sets no known config field"),
    "package": (["data@callbacks=cifar10"], "selects a config outside binexp's groups"),
}


@pytest.mark.parametrize("case", list(SAVED))
def test_saved_overrides_replay_only_plain_known_keys(cli, tmp_path, monkeypatch, case):
    monkeypatch.setenv("BINEXP_TEST_SECRET", "hunter2")
    marker = tmp_path / "fired"
    evil = evil_checkpoint(tmp_path / "payload.pt", marker)
    run = tmp_path / "run"
    lines_in, expected = SAVED[case]
    saved = ["data=synthetic", *(o.format(evil=evil, run=run) for o in lines_in)]
    fake_run(run, saved=saved)
    (run / ".hydra" / "notes.yaml").write_text("# @package _global_\nhydra:\n  callbacks: {}\n")
    before = tree(tmp_path)
    code, lines = cli(["train", f"resume={run}"])
    one_line(code, lines, expected)
    assert lines[0].startswith(f"binexp: error: {run / '.hydra' / 'overrides.yaml'}")
    assert "hunter2" not in lines[0]
    assert not marker.exists() and tree(tmp_path) == before


def test_billion_laughs_in_saved_overrides(cli, tmp_path):
    run = fake_run(tmp_path / "run")
    (run / ".hydra" / "overrides.yaml").write_text(LAUGHS)
    before = tree(tmp_path)
    code, lines = cli(["train", f"resume={run}"])
    one_line(code, lines, "uses YAML anchors or aliases")
    assert tree(tmp_path) == before


def test_saved_overrides_binexp_writes_still_replay(tmp_path):
    """What a real run records passes (groups, fields, lists, paths as plain strings)."""
    from binexp.runs.allowlist import check_saved_overrides

    check_saved_overrides(
        [
            "data=synthetic",
            "quantizer=flexor",
            "quantizer.n_in_per_stage=[4,4,4]",
            "experiment=xnor_synthetic_smoke",
            "seed=3",
            "trainer.max_epochs=2",
            "+trainer.max_steps=3",
            "data.root=/data/my cifar",
            "init_from=/runs/a b/checkpoints/last.ckpt",
        ],
        "saved",
    )


# ---------------------------------------------------------------------------------------------
# bounded before read: checkpoints, saved configs, MNIST archives, sweeps


def test_the_zip_bomb_payload_is_real(tmp_path):
    """A ~1 MB file that torch.load inflates to a 64 MiB tensor (a 17 MB one gives 4 GB)."""
    import torch

    from tests.artefacts import zip_bomb_checkpoint

    bomb = zip_bomb_checkpoint(tmp_path / "bomb.ckpt")
    assert bomb.stat().st_size < 2 * 2**20
    assert torch.load(bomb, weights_only=True)["state_dict"]["net.bomb"].numel() * 4 == 64 * 2**20


def no_torch_load(monkeypatch) -> None:
    """torch.load fails the test if binexp calls it: refused means never loaded."""
    import torch

    def refuse(*a, **k):
        raise AssertionError("torch.load was called")

    monkeypatch.setattr(torch, "load", refuse)


@pytest.mark.parametrize("how", ["init_from", "distill.teacher", "export"])
def test_zip_bomb_checkpoint_is_refused_before_loading(cli, tmp_path, monkeypatch, how):
    from tests.artefacts import zip_bomb_checkpoint

    bomb = zip_bomb_checkpoint(tmp_path / "in" / "bomb.ckpt")
    no_torch_load(monkeypatch)
    args = ["export", str(bomb), str(tmp_path / "o.flexor")] if how == "export" else ["train", *SYN, f"{how}={bomb}"]
    before = tree(tmp_path)
    code, lines = cli(args)
    one_line(code, lines, "holds compressed entries")
    assert "which torch.save never writes" in lines[0] and tree(tmp_path) == before


def test_zip_bomb_beside_last_ckpt_is_never_loaded(tmp_path, monkeypatch):
    """resume= looks at every checkpoint of the run: the bomb is not a candidate, never inflated."""
    import torch

    from binexp.runs.resume import find_checkpoint
    from tests.artefacts import zip_bomb_checkpoint

    run = fake_run(tmp_path / "run")
    zip_bomb_checkpoint(run / "checkpoints" / "epoch=9-step=99.ckpt")
    loaded = []
    real_load = torch.load
    monkeypatch.setattr(torch, "load", lambda f, *a, **k: loaded.append(Path(f).name) or real_load(f, *a, **k))
    assert find_checkpoint(run) == (run / "checkpoints" / "last.ckpt", None)
    assert "epoch=9-step=99.ckpt" not in loaded


def test_the_wide_config_payload_is_real(tmp_path):
    """The saved config of a 271k-weight checkpoint asks for ~2.7 billion parameters (counted on
    the meta device here: built for real it takes > 10 GB)."""
    import torch

    from binexp.config import to_schema
    from binexp.lit.module import ClassifierModule
    from binexp.models.registry import ModelConfig
    from binexp.quant.registry import get_quantizer
    from tests.artefacts import inflated_config_checkpoint

    ckpt = torch.load(inflated_config_checkpoint(tmp_path / "wide.ckpt", width=100.0), weights_only=True)
    config = ckpt["hyper_parameters"]["run_config"]
    with torch.device("meta"):
        net = ClassifierModule(
            to_schema(ModelConfig, config["model"], "model"),
            to_schema(get_quantizer(config["quantizer"]["name"]).schema, config["quantizer"], "quantizer"),
            None,  # type: ignore[arg-type]
            10,
        )
    assert sum(p.numel() for p in net.parameters()) > 2_600_000_000


@pytest.mark.parametrize("how", ["distill.teacher", "export", "summary"])
def test_checkpoint_whose_config_builds_a_huge_network(cli, tmp_path, how, monkeypatch):
    import binexp.lit.module
    from tests.artefacts import inflated_config_checkpoint

    wide = inflated_config_checkpoint(tmp_path / "in" / "wide.ckpt", width=100.0)
    real_build = binexp.lit.module.build_model

    def only_on_meta(*a, **k):
        import torch

        assert torch.empty(0).device.type == "meta", "a network was built for real from the saved config"
        return real_build(*a, **k)

    args = {
        "distill.teacher": ["train", *SYN, f"distill.teacher={wide}"],
        "export": ["export", str(wide), str(tmp_path / "o.flexor")],
        "summary": ["summary", "--run", str(wide)],
    }[how]
    if how == "distill.teacher":  # the student's own pre-flight builds a (real, small) network
        monkeypatch.setattr("binexp.preflight.check_model", lambda *a: None)
    monkeypatch.setattr(binexp.lit.module, "build_model", only_on_meta)
    before = tree(tmp_path)
    code, lines = cli(args)
    one_line(code, lines, "its saved config builds a network of 2,673,048,031 values, but its weights hold")
    assert tree(tmp_path) == before


def mnist_root(tmp: Path, images: int = 4) -> Path:
    import gzip

    import numpy as np

    root = tmp / "mnist"
    root.mkdir(parents=True, exist_ok=True)
    for prefix in ("train", "t10k"):
        x = np.zeros((images, 28, 28), np.uint8)
        header = bytes([0, 0, 8, 3]) + np.array([images, 28, 28], ">u4").tobytes()
        (root / f"{prefix}-images-idx3-ubyte").write_bytes(header + x.tobytes())
        labels = bytes([0, 0, 8, 1]) + np.array([images], ">u4").tobytes() + bytes(images)
        (root / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(labels))
    return root


def test_mnist_gzip_bomb(cli, tmp_path):
    """A gzip that inflates to 320 MiB (~300 KB on disk; the issue's 28 MB one gives 6 GB): read
    in 1 MiB chunks and refused past 256 MiB."""
    import gzip
    import zlib

    root = mnist_root(tmp_path / "in")
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)  # gzip framing
    block = bytes(2**20)
    body = b"".join(packer.compress(block) for _ in range(320)) + packer.flush()
    (root / "train-labels-idx1-ubyte.gz").write_bytes(body)
    with gzip.open(root / "train-labels-idx1-ubyte.gz") as f:  # the payload is real: 1 GiB comes out
        assert sum(len(c) for c in iter(lambda: f.read(2**24), b"")) == 320 * 2**20
    before = tree(tmp_path)
    code, lines = cli(["train", "data=mnist", "model=lenet5", f"data.root={root}"])
    one_line(code, lines, "inflates to more than 268,435,456 bytes")
    assert tree(tmp_path) == before


def test_mnist_with_zero_images(cli, tmp_path):
    root = mnist_root(tmp_path / "in", images=0)
    before = tree(tmp_path)
    code, lines = cli(["train", "data=mnist", "model=lenet5", f"data.root={root}"])
    one_line(code, lines, "MNIST train files hold 0 images")
    assert tree(tmp_path) == before


@pytest.mark.parametrize("where", ["explicit", "default"])
def test_empty_cifar_batches(cli, tmp_path, where):
    """Found only when training starts; the run's folder (and an ``outputs/`` made for it) goes again."""
    import pickle

    import numpy as np

    from tests.conftest import write_cifar_fixture

    root = write_cifar_fixture(tmp_path / "in" / "cifar", per_batch=4, test=4)
    for f in (root / "cifar-10-batches-py").glob("*_batch*"):
        with open(f, "wb") as out:
            pickle.dump({"data": np.zeros((0, 3072), np.uint8), "labels": []}, out)
    before = tree(tmp_path)
    code, lines = cli(
        [
            "train",
            "data=cifar10",
            f"data.root={root}",
            *([f"hydra.run.dir={tmp_path / 'run'}"] if where == "explicit" else []),
            "trainer.enable_progress_bar=false",
        ]
    )
    assert code == 1 and sum(line.startswith("binexp: error:") for line in lines) == 1
    assert "hold 0 training and 0 test images" in lines[-1]
    assert tree(tmp_path) == before  # the run found it while starting to train: its folder is gone again


def test_sweep_of_a_hundred_million_jobs(cli, tmp_path):
    before = tree(tmp_path)
    code, lines = cli(["train", "-m", *SYN, "seed=range(0,100000000)"])
    one_line(code, lines, "seed=range(0,100000000) makes the sweep more than 10,000 jobs")
    assert tree(tmp_path) == before
    sweep = sweep_with_metrics(tmp_path, json.dumps(GOOD).encode())
    (sweep / "multirun.yaml").write_text("hydra:\n  overrides:\n    task: ['seed=range(0,100000000)']\n")
    code, lines = cli(["status", str(sweep)])
    one_line(code, lines, "multirun.yaml: seed=range(0,100000000) makes the sweep more than 10,000 jobs")


def test_report_leaves_an_interpolation_as_text(cli, tmp_path, monkeypatch, capsys):
    """A saved ``${oc.env:...}`` is shown as written and named in one error line, never resolved
    (unset: no traceback; set: no secret)."""
    monkeypatch.delenv("BINEXP_TEST_SECRET", raising=False)
    job = tmp_path / "sweep" / "0_seed=0"
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text("- seed=0\n- name=${oc.env:BINEXP_TEST_SECRET}\n")
    code, lines = cli(["report", str(tmp_path / "sweep")])
    assert code == 2 and len(lines) == 1 and lines[0].startswith("binexp: error: report: "), (code, lines)
    assert "name=${oc.env:BINEXP_TEST_SECRET}" in lines[0] and "never resolves" in lines[0]
    assert "${oc.env:BINEXP_TEST_SECRET}" in cli.out  # the table shows it as written
    monkeypatch.setenv("BINEXP_TEST_SECRET", "hunter2")
    code, lines = cli(["status", str(tmp_path / "sweep")])
    assert code == 0 and "name=${oc.env:BINEXP_TEST_SECRET}" in cli.out and "hunter2" not in cli.out


# ---------------------------------------------------------------------------------------------
# _target_: an explicit list of classes, no prefix rule


def test_the_killpoint_payload_is_real(tmp_path):
    """A test callback (tests/support) kills or freezes a process at a chosen step: under the old
    prefix rule ``binexp.*`` any class binexp ships was admitted."""
    from binexp.runs.allowlist import allowed_target

    assert "binexp.lit.killpoint.KillAt".startswith(("lightning.pytorch.callbacks.", "binexp."))
    assert not allowed_target("binexp.lit.killpoint.KillAt")


@pytest.mark.parametrize(
    "target",
    [
        "binexp.lit.killpoint.KillAt",
        "tests.support.killpoint.KillAt",
        "binexp.lit.interrupt.Interrupt",
        "binexp.lit.callbacks.RunRecord",
        "binexp.safeio.atomic_write_text",
        "lightning.pytorch.callbacks.LambdaCallback",
        "lightning.pytorch.callbacks.ModelPruning",
        "lightning.pytorch.callbacks.lr_monitor.LearningRateMonitor.__init__",
    ],
)
def test_only_listed_classes_from_a_config(cli, tmp_path, target):
    code, lines = cli(["train", *SYN, f"+callbacks.x._target_={target}"])
    one_line(code, lines, f"callbacks.x: _target_='{target}' is not allowed")
    assert not (tmp_path / "outputs").exists()


def test_every_shipped_target_is_listed():
    """Each ``_target_`` in binexp's own configs is on the list and is a Lightning Callback."""
    import importlib

    import yaml
    from lightning.pytorch.callbacks import Callback

    from binexp.runs.allowlist import ALLOWED_TARGETS

    shipped = {
        line.split("_target_:")[1].split("#")[0].strip()
        for f in Path("conf").rglob("*.yaml")
        if f.parts[1] != "hydra"  # Hydra's own groups (its launchers): hydra.* is never replayed from a run
        for line in f.read_text().splitlines()
        if "_target_:" in line and not line.lstrip().startswith("#")
    }
    # Hydra's own callbacks (hydra.callbacks in train.yaml) are Hydra's config, which no override may set
    hydra_callbacks = yaml.safe_load(Path("conf/train.yaml").read_text())["hydra"].get("callbacks") or {}
    shipped -= {c["_target_"] for c in hydra_callbacks.values()}
    assert shipped and shipped <= ALLOWED_TARGETS
    for target in ALLOWED_TARGETS:
        module, name = target.rsplit(".", 1)
        assert issubclass(getattr(importlib.import_module(module), name), Callback), target


@pytest.mark.parametrize(
    "saved",
    ["callbacks.last_checkpoint.dirpath=/elsewhere", "callbacks.model_checkpoint.filename=../../../elsewhere/x"],
)
def test_saved_overrides_cannot_move_writes_out_of_the_run(cli, tmp_path, saved):
    run = fake_run(tmp_path / "run", saved=["data=synthetic", saved])
    before = tree(tmp_path)
    code, lines = cli(["train", f"resume={run}"])
    one_line(code, lines, "points binexp's writes outside the run directory")
    assert tree(tmp_path) == before


# ---------------------------------------------------------------------------------------------
# ImageFolder: no folder link followed, unreadable images one line


def png_header(width: int, height: int) -> bytes:
    """A PNG that claims width x height pixels (its pixel data is cut short)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def test_the_folder_loop_payload_is_real(tmp_path):
    from tests.conftest import write_imagefolder_fixture

    root = write_imagefolder_fixture(tmp_path / "folder", classes=2, per_class=1, size=8)
    for name in ("loop", "loop2"):  # two links: 2^40 paths before the kernel's link limit stops each
        (root / "train" / "class_0" / name).symlink_to(".")
    walked = 0
    for _ in os.walk(root / "train", followlinks=True):  # what ImageFolder does
        walked += 1
        if walked > 1000:
            break
    assert walked > 1000


def test_image_folder_does_not_follow_folder_links(tmp_path):
    from binexp.data.imagefolder import _has_image, image_files
    from tests.conftest import write_imagefolder_fixture

    root = write_imagefolder_fixture(tmp_path / "folder", classes=2, per_class=2, size=8)
    for name in ("loop", "loop2"):
        (root / "train" / "class_0" / name).symlink_to(".")
    (root / "train" / "class_0" / "zero.png").symlink_to("/dev/zero")
    found = image_files(str(root / "train"), {"class_0": 0, "class_1": 1})
    assert len(found) == 4 and not any("loop" in p or "zero" in p for p, _ in found)
    assert _has_image(root / "train" / "class_0")


@pytest.mark.parametrize("bad", ["bomb", "truncated"])
def test_unreadable_image_is_one_line(cli, tmp_path, bad):
    """A 20000 x 20000 PNG (PIL's decompression-bomb limit refuses it) or a truncated one."""
    from PIL import Image

    from tests.conftest import write_imagefolder_fixture

    root = write_imagefolder_fixture(tmp_path / "in" / "folder", classes=2, per_class=1, size=8)
    victim = next((root / "train" / "class_0").glob("*.png"))
    if bad == "bomb":
        victim.write_bytes(png_header(20000, 20000))
        with pytest.raises(Image.DecompressionBombError):  # the payload is real: 400 M pixels asked for
            Image.open(victim)
    else:
        victim.write_bytes(victim.read_bytes()[:-40])
        with pytest.raises(OSError):
            Image.open(victim).load()
    before = tree(tmp_path)
    code, lines = cli(
        [
            "train",
            "data=imagefolder",
            f"data.root={root}",
            "data.image_size=8",
            "data.num_workers=0",
            "data.batch_size=2",
            "trainer.max_epochs=1",
            "trainer.limit_val_batches=1",
            "trainer.num_sanity_val_steps=0",
            f"hydra.run.dir={tmp_path / 'run'}",
            "trainer.enable_progress_bar=false",
        ]
    )
    assert code == 1 and sum(line.startswith("binexp: error:") for line in lines) == 1, lines
    assert f"image {victim} cannot be read" in lines[-1]
    assert tree(tmp_path) == before
