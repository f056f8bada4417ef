"""Exact resume and honest status: a training subprocess is killed (SIGKILL) or interrupted
(SIGINT, SIGTERM) at exact points by ``tests.support.killpoint.KillAt`` (added by the test
launcher, which no config can do); resuming with ``resume=``
must end in bit-identical network tensors and equal metrics to the uninterrupted run (CPU, one
thread: the same arithmetic in every process)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from binexp.runs.record import effective_status
from tests.conftest import HANG_LIMIT, QUICK, cli_command, read_metrics, run_cli

# 4 batches per epoch, 3 epochs: global steps 0..11
TINY = [
    "model=resnet20",
    "data=synthetic",
    "data.train_size=128",
    "data.val_size=64",
    "data.batch_size=32",
    "data.eval_batch_size=64",
    "data.image_size=16",
    "trainer.max_epochs=3",
    *QUICK,
]
ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
KILL = "tests.support.killpoint.KillAt"


def kill_at(
    name: str, tmp: Path, at: str, signal_name: str = "SIGKILL", step: int = -1, epoch: int = -1
) -> tuple[str, dict]:
    """A KillAt callback for the test launcher that fires once (its once-file disarms it on resume)."""
    once = str(tmp / (name + ".fired"))
    return KILL, {"at": at, "signal": signal_name, "step": step, "epoch": epoch, "once_file": once}


def network(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["state_dict"]


def assert_same_run(run: Path, ref: Path) -> None:
    a, b = network(run), network(ref)
    assert a.keys() == b.keys()
    differ = [k for k in a if not torch.equal(a[k], b[k])]
    assert not differ, f"{len(differ)} of {len(a)} tensors differ, e.g. {differ[:3]}"
    m, r = read_metrics(run), read_metrics(ref)
    assert m["status"] == "completed" and m["global_step"] == r["global_step"] == 12
    for key in ("val_acc1", "best_val_acc1", "val_loss", "train_acc1", "train_loss", "epochs"):
        assert m[key] == r[key], (key, m[key], r[key])


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run per quantizer, trained once per module."""
    runs: dict[str, Path] = {}

    def get(quantizer: str) -> Path:
        if quantizer not in runs:
            tmp = tmp_path_factory.mktemp(f"ref_{quantizer}")
            run = tmp / "run"
            r = run_cli(["train", f"quantizer={quantizer}", *TINY, f"hydra.run.dir={run}"], tmp, env=ENV)
            assert r.returncode == 0, r.stderr[-3000:]
            runs[quantizer] = run
        return runs[quantizer]

    return get


def interrupt_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("binexp:")]


@pytest.mark.slow
def test_sigkill_then_sigint_mid_epoch_resume_bit_identically(tmp_path, reference):
    """xnor: SIGKILL in epoch 1 (the run reads running while its process lives, then dead; resume
    continues from epoch 0's end), then
    Ctrl-C (SIGINT) two batches into epoch 1 of the resumed run: status interrupted, one line with
    the resume command, a mid-epoch checkpoint; the second resume finishes the run bit-identically."""
    run = tmp_path / "run"
    args = ["train", "quantizer=xnor", *TINY, f"hydra.run.dir={run}"]
    kills = [kill_at("stop", tmp_path, "batch", "SIGSTOP", step=5), kill_at("int", tmp_path, "batch", "SIGINT", step=6)]
    command, extra = cli_command(args, kills)
    env = {k: v for k, v in os.environ.items() if k != "BINEXP_VERB"} | ENV | extra
    with open(tmp_path / "first.log", "w") as log:
        proc = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:  # the process freezes itself at step 5, holding its lock: the run reads running
        deadline = time.monotonic() + HANG_LIMIT
        while not (tmp_path / "stop.fired").exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert (tmp_path / "stop.fired").exists(), (tmp_path / "first.log").read_text()[-3000:]
        assert effective_status(run, read_metrics(run)) == "running"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    m = read_metrics(run)
    assert m["status"] == "running" and effective_status(run, m) == "dead"  # SIGKILL: the lock died with it

    r = run_cli(["train", f"resume={run}"], tmp_path, env=ENV, callbacks=kills)
    assert r.returncode == 128 + signal.SIGINT, r.stderr[-3000:]
    assert "Traceback" not in r.stderr
    assert interrupt_lines(r.stderr) == [
        (
            f"binexp: interrupted by SIGINT at epoch 2, step 6 (checkpoint saved); "
            f"continue with: binexp train resume={run}"
        )
    ], r.stderr[-2000:]
    m = read_metrics(run)
    assert m["status"] == "interrupted" and effective_status(run, m) == "interrupted" and "error" not in m
    assert m["global_step"] == 6 and m["val_acc1"] is not None  # epoch 0's numbers stand until epoch 1 has its own
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["global_step"] == 6 and ckpt["epoch"] == 1  # mid-epoch: 2 of epoch 1's 4 batches trained
    assert ckpt["loops"]["fit_loop"]["state_dict"]["combined_loader"] == [
        {"epoch": 1, "batches": 2, "seed": 0, "batch_size": 32}
    ]
    assert not [p for p in (run / "checkpoints").iterdir() if p.name.endswith(".tmp")]

    r = run_cli(["train", f"resume={run}"], tmp_path, env=ENV)
    assert r.returncode == 0, r.stderr[-3000:]
    assert_same_run(run, reference("xnor"))

    # resuming the completed run again: one line, nothing rewritten
    before = (run / "metrics.json").read_bytes()
    r = run_cli(["train", f"resume={run}"], tmp_path, env=ENV)
    assert r.returncode == 0, r.stderr[-3000:]
    assert interrupt_lines(r.stderr) == []  # not an error: what to do to train it further
    assert r.stdout.splitlines()[-1:] == [
        f"{run} already completed its 3 epochs; to train it further: "
        f"binexp train resume={run} trainer.max_epochs=<more than 3>"
    ]
    assert (run / "metrics.json").read_bytes() == before


def test_a_killed_process_leaves_its_lock_free_so_the_run_reads_dead(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.json").write_text(json.dumps({"status": "running"}))
    code = (
        "import sys, time; from binexp.runs.record import RunLock; "
        f"assert RunLock({str(run)!r}).acquire(); print('held', flush=True); time.sleep(60)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        assert effective_status(run, read_metrics(run)) == "running"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert effective_status(run, read_metrics(run)) == "dead"
    assert effective_status(run, {"status": "completed"}) == "completed"


@pytest.mark.slow
@pytest.mark.parametrize(
    "quantizer, kills",
    [
        # RBNN: killed while last.ckpt of epoch 0 is half written (resume falls back to the newest readable
        # checkpoint), then right after epoch 1's rotation update, then SIGTERM one batch into epoch 2
        (
            "rbnn",
            [("checkpoint_write", "SIGKILL", -1, 0), ("epoch_start", "SIGKILL", -1, 1), ("batch", "SIGTERM", 9, -1)],
        ),
        ("flexor", [("batch", "SIGKILL", 6, -1)]),
    ],
    ids=["rbnn", "flexor"],
)
def test_killed_at_any_point_resumes_bit_identically(tmp_path, reference, quantizer, kills):
    run = tmp_path / "run"
    args = ["train", f"quantizer={quantizer}", *TINY, f"hydra.run.dir={run}"]
    # each KillAt fires once, in the first process that reaches it
    extra = [kill_at(f"k{i}", tmp_path, *kill) for i, kill in enumerate(kills)]
    r = run_cli(args, tmp_path, env=ENV, callbacks=extra)
    for i, (_at, sig, _step, _epoch) in enumerate(kills):
        killed = sig == "SIGKILL"
        assert r.returncode == (-signal.SIGKILL if killed else 128 + getattr(signal, sig)), (
            i,
            r.returncode,
            r.stderr[-2000:],
        )
        assert (tmp_path / f"k{i}.fired").exists()
        m = read_metrics(run)
        if killed:
            assert m["status"] == "running" and effective_status(run, m) == "dead"
        else:
            assert m["status"] == "interrupted" and effective_status(run, m) == "interrupted"
            assert f"continue with: binexp train resume={run}" in r.stderr
        r = run_cli(["train", f"resume={run}"], tmp_path, env=ENV, callbacks=extra)
    assert r.returncode == 0, r.stderr[-3000:]
    assert not [p for p in (run / "checkpoints").iterdir() if p.name.endswith(".tmp")]
    assert_same_run(run, reference(quantizer))


def test_ctrl_c_during_start_up_is_one_line_and_leaves_no_run(tmp_path):
    run = tmp_path / "run"
    r = run_cli(
        ["train", "quantizer=xnor", *TINY, f"hydra.run.dir={run}"],
        tmp_path,
        env=ENV,
        callbacks=[kill_at("int", tmp_path, "fit_start", "SIGINT")],
    )
    assert r.returncode == 128 + signal.SIGINT, r.stderr[-3000:]
    assert "Traceback" not in r.stderr and "KeyboardInterrupt" not in r.stderr
    assert interrupt_lines(r.stderr) == [
        ("binexp: interrupted by SIGINT during start-up, before anything was trained; run the same command again")
    ], r.stderr[-2000:]
    # nothing that makes the preflight call the folder a run: the same command can run again
    assert not (run / "metrics.json").exists() and not (run / "checkpoints").exists()


def test_ctrl_c_in_any_verb_before_a_run_is_one_line(monkeypatch, capsys):
    from binexp import cli

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setitem(cli.VERBS, "list", interrupted)
    assert cli.main(["list"]) == 130
    assert capsys.readouterr().err.strip().splitlines() == ["binexp: error: interrupted"]
