"""A full disk or an unwritable output: one line, status failed, the last good checkpoint
still loads, and no temporary file anywhere (run directory or system temp dir)."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import tempfile

import lightning.pytorch  # noqa: F401 - imported outside capsys: its log handler keeps a live stream
import pytest
import torch

from binexp import safeio
from binexp.cli import main
from binexp.runs import checkpoint
from tests.conftest import QUICK

TINY = [
    "data=synthetic",
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=2",
    "trainer.limit_val_batches=1",
    "callbacks.layer_diagnostics=null",
    *QUICK,
]


@pytest.fixture
def cli(monkeypatch, tmp_path, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BINEXP_VERB", "")
    monkeypatch.setattr(sys, "argv", ["binexp"])
    temp = tmp_path / "systemp"
    temp.mkdir()
    monkeypatch.setenv("TMPDIR", str(temp))
    monkeypatch.setattr(tempfile, "tempdir", str(temp))

    def run(args: list[str]) -> tuple[int, list[str]]:
        capsys.readouterr()
        try:
            code = main(args)
        except SystemExit as e:
            code = e.code
        err = capsys.readouterr().err
        assert "Traceback" not in err, err
        return code, [line for line in err.splitlines() if line.startswith("binexp:")]

    return run


def leftovers(*dirs) -> list[str]:
    return [str(p) for d in dirs for p in d.rglob("*") if ".tmp" in p.name]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """One finished 1-epoch run (in-process), copied by each test that resumes it."""
    root = tmp_path_factory.mktemp("finished")
    cwd, argv, verb = os.getcwd(), sys.argv, os.environ.pop("BINEXP_VERB", None)
    os.chdir(root)
    try:
        assert main(["train", *TINY, f"hydra.run.dir={root / 'run'}"]) == 0
    finally:
        os.chdir(cwd)
        sys.argv = argv
        os.environ.pop("BINEXP_VERB", None)
        if verb is not None:
            os.environ["BINEXP_VERB"] = verb
    return root / "run"


def copy_run(src, dst):
    import shutil

    shutil.copytree(src, dst)
    return dst


@pytest.mark.slow
@pytest.mark.parametrize("err", [errno.ENOSPC, errno.EROFS])
def test_checkpoint_write_failure_keeps_the_last_good_checkpoint(cli, tmp_path, monkeypatch, err, finished_run):
    run = copy_run(finished_run, tmp_path / "run")
    last = run / "checkpoints" / "last.ckpt"
    good = last.read_bytes()
    real_save = torch.save

    def full_disk(obj, f, *args, **kwargs):  # half a checkpoint reaches the disk, then the disk is full
        real_save({"partial": torch.zeros(1000)}, f)
        raise OSError(err, os.strerror(err))

    monkeypatch.setattr(torch, "save", full_disk)
    code, lines = cli(["train", f"resume={run}", "trainer.max_epochs=2"])
    monkeypatch.setattr(torch, "save", real_save)
    assert code == 1 and len(lines) == 1
    assert lines[0].startswith(f"binexp: error: cannot write to the run directory {run} ({os.strerror(err)}")
    assert f"continue with resume={run}" in lines[0]
    m = json.loads((run / "metrics.json").read_text())
    assert m["status"] == "failed" and m["error"].startswith("OSError")
    assert last.read_bytes() == good
    assert checkpoint.load(last, "resume")["epoch"] == 0
    assert leftovers(run, tmp_path / "systemp") == [] and list((tmp_path / "systemp").iterdir()) == []


@pytest.mark.slow
def test_unwritable_run_directory_mid_run_is_one_line(cli, tmp_path, monkeypatch, finished_run):
    """Nothing in the run directory can be written (metrics.json neither): still one line."""
    run = copy_run(finished_run, tmp_path / "run")
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file() and p.suffix in (".ckpt", ".json")}

    def read_only(path, write):
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(checkpoint, "atomic_write", read_only)  # checkpoints
    monkeypatch.setattr(safeio, "atomic_write", read_only)  # metrics.json, summaries, figures
    code, lines = cli(["train", f"resume={run}", "trainer.max_epochs=2"])
    assert (
        code == 1
        and len(lines) == 1
        and "Permission denied" in lines[0]
        and "cannot write to the run directory" in lines[0]
    )
    assert {p: p.read_bytes() for p in before} == before
    assert leftovers(run) == []


def _read_only_dir(path) -> bool:
    """A really read-only folder: a read-only tmpfs as root, chmod otherwise."""
    path.mkdir()
    if os.geteuid() == 0:
        r = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(path)], capture_output=True, check=False
        )
        return r.returncode == 0
    path.chmod(0o555)
    return not os.access(path, os.W_OK)


def test_read_only_output_directory_is_refused_up_front(cli, tmp_path):
    ro = tmp_path / "ro"
    if not _read_only_dir(ro):
        pytest.skip("cannot make a read-only folder here")
    try:
        code, lines = cli(["train", *TINY, f"hydra.run.dir={ro / 'run'}"])
        assert code == 2 and lines == [
            (
                f"binexp: error: cannot write to {ro} (read-only or no permission); fix: choose a "
                f"writable output directory with hydra.run.dir=<folder> (or run from a writable folder)"
            )
        ]
        code, lines = cli(["train", "-m", *TINY, f"hydra.sweep.dir={ro / 'sweep'}"])
        assert code == 2 and len(lines) == 1 and f"cannot write to {ro}" in lines[0]
        assert list(ro.iterdir()) == []
    finally:
        if os.geteuid() == 0:
            subprocess.run(["umount", str(ro)], capture_output=True, check=False)
        else:
            ro.chmod(0o755)


def test_atomic_write_leaves_the_old_file_on_failure(tmp_path):
    target = tmp_path / "metrics.json"
    target.write_text('{"status": "running"}')

    def half(f):
        f.write(b'{"status": "compl')
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError):
        safeio.atomic_write(target, half)
    assert target.read_text() == '{"status": "running"}' and [p.name for p in tmp_path.iterdir()] == ["metrics.json"]
    safeio.atomic_write_text(target, '{"status": "completed"}')
    assert target.read_text() == '{"status": "completed"}' and [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


@pytest.mark.slow
def test_a_really_full_disk(tmp_path):
    """A 3 MB tmpfs: the first epoch's checkpoints (2.2 MB each) do not both fit."""
    from tests.conftest import run_cli

    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(disk)], capture_output=True, check=False
    ).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        temp = tmp_path / "systemp"
        temp.mkdir()
        r = run_cli(
            ["train", *TINY, "trainer.max_epochs=2", f"hydra.run.dir={disk / 'run'}"],
            tmp_path,
            env={"TMPDIR": str(temp)},
        )
        errors = [line for line in r.stderr.splitlines() if line.startswith("binexp:")]
        assert r.returncode == 1 and len(errors) == 1 and "No space left on device" in errors[0], r.stderr[-2000:]
        assert "Traceback" not in r.stderr
        m = json.loads((disk / "run" / "metrics.json").read_text())
        assert m["status"] == "failed"
        ckpts = list((disk / "run" / "checkpoints").glob("*.ckpt"))
        for c in ckpts:  # whatever made it to the disk is whole
            assert checkpoint.load(c, "resume")["epoch"] in (0, 1)
        assert leftovers(disk, temp) == [] and list(temp.iterdir()) == []
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True, check=False)


def test_stale_temporary_files_of_dead_writers_are_removed(tmp_path):
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    ).stdout.strip()
    (tmp_path / f".last.ckpt.tmp-{dead}").write_bytes(b"half")
    (tmp_path / f".metrics.json.tmp-{os.getpid()}").write_bytes(b"mine")  # a live writer's file stays
    (tmp_path / "last.ckpt").write_bytes(b"whole")
    assert [p.name for p in safeio.remove_stale_temps(tmp_path)] == [f".last.ckpt.tmp-{dead}"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [f".metrics.json.tmp-{os.getpid()}", "last.ckpt"]
