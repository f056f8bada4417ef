"""Each artefact a colleague or a download could hand over - a checkpoint (for resume=,
init_from=, distill.teacher=, export), a run directory with an injected ``_target_``, a CIFAR
batch - carries a payload that creates a marker file. None may run: the command ends with its
one line and the marker never appears. Each artefact is first shown to fire through a plain
(unsafe) load, so these tests fail if the artefact is harmless."""

from __future__ import annotations

import pickle

import lightning.pytorch  # noqa: F401 - imported outside capsys: its log handler keeps a live stream
import pytest
import torch

from binexp.errors import BinexpError
from binexp.runs import checkpoint
from tests.artefacts import (
    evil_checkpoint,
    evil_cifar_batch,
    fake_checkpoint,
    fake_run,
    tree,
)
from tests.conftest import write_cifar_fixture


def test_the_checkpoint_payload_is_real(tmp_path):
    marker = tmp_path / "fired"
    torch.load(evil_checkpoint(tmp_path / "evil.ckpt", marker), weights_only=False)
    assert marker.exists()


def test_the_cifar_payload_is_real(tmp_path):
    marker = tmp_path / "fired"
    with open(evil_cifar_batch(tmp_path / "data_batch_1", marker), "rb") as f:
        pickle.load(f)
    assert marker.exists()


@pytest.mark.parametrize("option", ["init_from", "distill.teacher"])
def test_checkpoint_through_train_options(cli, tmp_path, option):
    marker = tmp_path / "fired"
    evil = evil_checkpoint(tmp_path / "evil.ckpt", marker)
    code, lines = cli(["train", "data=synthetic", f"{option}={evil}"])
    assert (
        code == 2
        and len(lines) == 1
        and lines[0].startswith(f"binexp: error: {option}: checkpoint {evil} asks to build ")
    )
    assert "system" in lines[0] and "nothing was run" in lines[0]
    assert not marker.exists() and not (tmp_path / "outputs").exists()


def test_checkpoint_through_export(cli, tmp_path):
    marker = tmp_path / "fired"
    evil = evil_checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt", marker)
    code, lines = cli(["export", str(tmp_path / "run"), str(tmp_path / "out.flexor")])
    assert (
        code == 2
        and len(lines) == 1
        and lines[0].startswith(f"binexp: error: export: checkpoint {evil} asks to build ")
    )
    assert not marker.exists() and not (tmp_path / "out.flexor").exists()


def test_checkpoint_through_resume(cli, tmp_path):
    marker = tmp_path / "fired"
    run = fake_run(tmp_path / "run")
    evil = evil_checkpoint(run / "checkpoints" / "last.ckpt", marker)
    before = tree(run)
    code, lines = cli(["train", f"resume={run}"])
    assert (
        code == 2
        and len(lines) == 1
        and lines[0].startswith(f"binexp: error: resume: checkpoint {evil} asks to build ")
    )
    assert not marker.exists() and tree(run) == before


def test_lightnings_own_resume_load_is_weights_only(cli, tmp_path, monkeypatch):
    """Past the pre-flight (a good last.ckpt when it looked, a malicious one when Lightning
    loads it): Lightning's restore goes through SafeCheckpointIO, so it refuses the payload."""
    import binexp.run
    import binexp.runs.resume

    marker = tmp_path / "fired"
    run = fake_run(tmp_path / "run")
    real_check = binexp.runs.resume.resume_checkpoint

    def swap_after_check(run_dir):
        found = real_check(run_dir)
        evil_checkpoint(found[0], marker)  # replaced between binexp's checks and Lightning's load
        return found

    monkeypatch.setattr(binexp.run, "resume_checkpoint", swap_after_check)  # after the pre-flight's and the run's look
    code, lines = cli(["train", f"resume={run}", "trainer.enable_progress_bar=false"])
    assert code == 1 and lines[-1].startswith("binexp: error: resume: checkpoint ") and "asks to build" in lines[-1]
    assert sum(line.startswith("binexp: error:") for line in lines) == 1
    assert not marker.exists()


def test_safe_checkpoint_io_refuses_and_loads(tmp_path):
    marker = tmp_path / "fired"
    io = checkpoint.safe_checkpoint_io()
    with pytest.raises(BinexpError, match="asks to build"):
        io.load_checkpoint(
            evil_checkpoint(tmp_path / "evil.ckpt", marker), weights_only=False
        )  # even when asked for an unsafe load
    assert not marker.exists()
    good = fake_checkpoint(tmp_path / "good.ckpt")
    io.save_checkpoint(io.load_checkpoint(good), tmp_path / "copy.ckpt")
    copy = torch.load(tmp_path / "copy.ckpt", weights_only=True)
    assert set(copy["state_dict"]) == set(torch.load(good, weights_only=True)["state_dict"])
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "copy.ckpt",
        "evil.ckpt",
        "good.ckpt",
    ]  # no temporary file left


@pytest.mark.parametrize(
    "injected",
    [
        ["+callbacks.evil._target_=builtins.open", "+callbacks.evil.file={marker}", "+callbacks.evil.mode=w"],
        ["+callbacks.evil={{_target_:builtins.open,file:'{marker}',mode:w}}"],
        [
            "callbacks.lr_monitor._target_=builtins.open",
            "+callbacks.lr_monitor.file={marker}",
            "+callbacks.lr_monitor.mode=w",
        ],
        ["+anywhere.deep._target_=builtins.open"],
        ["hydra.callbacks.evil._target_=builtins.open"],
    ],
)
def test_run_dir_with_injected_target(cli, tmp_path, injected):
    marker = tmp_path / "fired"
    saved = ["data=synthetic", *(o.format(marker=marker) for o in injected)]
    run = fake_run(tmp_path / "run", saved=saved)
    before = tree(run)
    code, lines = cli(["train", f"resume={run}"])
    assert code == 2 and len(lines) == 1 and lines[0].startswith(f"binexp: error: {run / '.hydra' / 'overrides.yaml'}")
    assert "builtins.open" in lines[0] or "changes Hydra itself" in lines[0]
    assert not marker.exists() and tree(run) == before


def test_the_same_target_from_the_command_line_is_refused_too(cli, tmp_path):
    marker = tmp_path / "fired"
    code, lines = cli(
        [
            "train",
            "data=synthetic",
            "+callbacks.evil._target_=builtins.open",
            f"+callbacks.evil.file={marker}",
            "+callbacks.evil.mode=w",
        ]
    )
    assert code == 2 and len(lines) == 1
    assert lines[0].startswith(
        "binexp: error: callbacks.evil: _target_='builtins.open' is not allowed; fix: only these callback "
        "classes may be instantiated from a config: ActivationDiagnostics, DeviceStatsMonitor, "
    )
    assert not marker.exists() and not (tmp_path / "outputs").exists()


def test_cifar_batch_with_payload(cli, tmp_path):
    marker = tmp_path / "fired"
    root = write_cifar_fixture(tmp_path / "cifar", per_batch=8, test=8)
    evil_cifar_batch(root / "cifar-10-batches-py" / "data_batch_1", marker)
    code, lines = cli(
        [
            "train",
            "data=cifar10",
            f"data.root={root}",
            f"hydra.run.dir={tmp_path / 'run'}",
            "trainer.enable_progress_bar=false",
        ]
    )
    assert code == 1 and sum(line.startswith("binexp: error:") for line in lines) == 1
    assert (
        "data_batch_1 is not plain data (refused global posix.system" in lines[-1]
        or "refused global nt.system" in lines[-1]
    )
    assert not marker.exists()


def test_cifar_meta_with_payload_stops_before_the_run(cli, tmp_path):
    marker = tmp_path / "fired"
    root = write_cifar_fixture(tmp_path / "cifar", per_batch=8, test=8)
    evil_cifar_batch(root / "cifar-10-batches-py" / "batches.meta", marker)
    code, lines = cli(["train", "data=cifar10", f"data.root={root}"])
    assert code == 2 and len(lines) == 1 and "batches.meta is not plain data" in lines[0]
    assert not marker.exists() and not (tmp_path / "outputs").exists()


def test_binexp_checkpoints_need_nothing_beyond_the_default_allow_list(tmp_path):
    """What binexp writes loads weights-only: every global in a checkpoint is one torch allows
    by default (SAFE_GLOBALS is empty), for every quantizer's state."""
    import io
    import pickletools
    import zipfile

    from torch import _weights_only_unpickler

    allowed = set(_weights_only_unpickler._get_allowed_globals())
    for q in ("xnor", "rbnn", "flexor", "bireal", "fp"):
        path = fake_checkpoint(tmp_path / f"{q}.ckpt", [f"quantizer={q}"])
        with zipfile.ZipFile(path) as z:
            data = z.read(next(n for n in z.namelist() if n.endswith("data.pkl")))
        text = io.StringIO()
        pickletools.dis(data, out=text)
        globals_ = {
            line.split("GLOBAL", 1)[1].strip().strip("'").replace(" ", ".")
            for line in text.getvalue().splitlines()
            if " GLOBAL " in line
        }
        assert globals_ and globals_ <= allowed, (q, globals_ - allowed)
        assert checkpoint.load(path, "init_from")["epoch"] == 0
    assert checkpoint.SAFE_GLOBALS == ()
