"""Kill and resume at every step of a short run: 3 epochs x 2 training batches (global steps
1..6), killed (SIGKILL) or stopped (SIGTERM) after every training batch, during validation,
during the write of ``last.ckpt`` and at the epoch boundary (after RBNN's rotation update), each
time resumed with ``resume=``. The run that took 11 processes must end exactly where the
uninterrupted run ends: 0 tensors differ, the same global step, the same validation curve, the
same metrics.json numbers and one epoch line per epoch in ``train.log``, equal to the
uninterrupted run's but for the timings.

A SIGTERM that lands on the last batch of an epoch or during validation is acted on at the end
of that epoch (after its validation and its checkpoint), so it resumes at an epoch boundary; one
that lands on any other batch saves a mid-epoch checkpoint at the end of that batch."""

from __future__ import annotations

import re
import signal
from pathlib import Path

import pytest
import torch

from binexp.runs.record import effective_status
from binexp.runs.resume import find_checkpoint
from tests.conftest import QUICK, read_metrics, run_cli

TINY = [
    "model=resnet20",
    "model.width=0.25",
    "data=synthetic",
    "data.train_size=64",
    "data.val_size=32",
    "data.batch_size=32",
    "data.eval_batch_size=32",
    "data.image_size=16",
    "trainer.max_epochs=3",
    *QUICK,
]
ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
KILL = "tests.support.killpoint.KillAt"
T, K = "SIGTERM", "SIGKILL"

# (name, at, signal, global step, epoch), in the order the run reaches them; each fires once, in the
# first process that reaches it. Every batch is covered: step 5 is where the SIGTERM sent at epoch 2's
# start is acted on.
CHAIN = [
    ("b1", "batch", T, 1, -1),  # mid-epoch checkpoint before any epoch-end one
    ("b2", "batch", T, 2, -1),  # the last batch of epoch 0: acted on after epoch 0's validation and checkpoint
    ("s1", "epoch_start", K, -1, 1),  # after the rotation update of epoch 1, before its first batch
    ("b3", "batch", K, 3, -1),  # resumes from epoch 0's end
    ("b4", "batch", K, 4, -1),  # the last batch of epoch 1
    ("v1", "validation", T, -1, 1),  # acted on at epoch 1's end
    ("s2", "epoch_start", T, -1, 2),  # acted on after step 5: a mid-epoch checkpoint
    ("b6", "batch", K, 6, -1),  # the last batch of the run; resumes from step 5's mid-epoch checkpoint
    ("v2", "validation", K, -1, 2),
    ("c2", "checkpoint_write", K, -1, 2),  # last.ckpt of epoch 2 half written in place
]
EPOCH_LINE = re.compile(r"epoch (\d+)/3  (train loss \S+ top-1 \S+  val top-1 \S+ \(best \S+\)  lr \S+)  ")


def callbacks(tmp: Path) -> list[tuple[str, dict]]:
    return [
        (KILL, {"at": at, "signal": sig, "step": step, "epoch": epoch, "once_file": str(tmp / f"{name}.fired")})
        for name, at, sig, step, epoch in CHAIN
    ]


def epoch_lines(run: Path) -> list[tuple[int, str]]:
    """(epoch, the line without its timings) of every epoch line in train.log, in order."""
    return [(int(m[1]), m[2]) for m in EPOCH_LINE.finditer((run / "train.log").read_text())]


def val_curve(run: Path) -> dict[int, float]:
    """val/acc1 by global step from every TensorBoard events file of the run (the last value
    written wins, as TensorBoard draws a step logged twice)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from binexp.tb_tags import tb_tag

    points: dict[int, tuple[float, float]] = {}
    for events in sorted(run.glob("events.out.tfevents.*")):
        acc = EventAccumulator(str(events), size_guidance={"scalars": 0})
        acc.Reload()
        if tb_tag("val/acc1") in acc.Tags()["scalars"]:
            for e in acc.Scalars(tb_tag("val/acc1")):
                if e.step not in points or e.wall_time >= points[e.step][0]:
                    points[e.step] = (e.wall_time, e.value)
    return {step: value for step, (_, value) in sorted(points.items())}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    runs: dict[str, Path] = {}

    def get(quantizer: str) -> Path:
        if quantizer not in runs:
            tmp = tmp_path_factory.mktemp(f"whole_{quantizer}")
            run = tmp / "run"
            r = run_cli(["train", f"quantizer={quantizer}", *TINY, f"hydra.run.dir={run}"], tmp, env=ENV)
            assert r.returncode == 0, r.stderr[-3000:]
            runs[quantizer] = run
        return runs[quantizer]

    return get


@pytest.mark.slow  # 12 training processes per method (tiny: 3 epochs x 2 batches of a quarter-width ResNet-20)
@pytest.mark.parametrize("quantizer", ["rbnn", "flexor", "xnor"])
def test_killed_at_every_step_resumes_exactly(tmp_path, uninterrupted, quantizer):
    ref = uninterrupted(quantizer)
    run = tmp_path / "run"
    extra = callbacks(tmp_path)
    r = run_cli(["train", f"quantizer={quantizer}", *TINY, f"hydra.run.dir={run}"], tmp_path, env=ENV, callbacks=extra)
    for name, _at, sig, _step, _epoch in CHAIN:
        assert (tmp_path / f"{name}.fired").exists(), (name, r.returncode, r.stderr[-3000:])
        m = read_metrics(run)
        if sig == K:
            assert r.returncode == -signal.SIGKILL, (name, r.returncode, r.stderr[-3000:])
            assert m["status"] == "running" and effective_status(run, m) == "dead", name
        else:
            assert r.returncode == 128 + signal.SIGTERM, (name, r.returncode, r.stderr[-3000:])
            assert m["status"] == "interrupted" and effective_status(run, m) == "interrupted", name
            assert f"continue with: binexp train resume={run}" in r.stderr, (name, r.stderr[-2000:])
            assert "Traceback" not in r.stderr, name
        r = run_cli(["train", f"resume={run}"], tmp_path, env=ENV, callbacks=extra)
    assert r.returncode == 0, r.stderr[-3000:]

    # the run's final network: its newest readable checkpoint (c2 left last.ckpt half written, and the
    # last resume, from epoch 2's best checkpoint, had nothing left to train)
    final, _ = find_checkpoint(run)
    assert final is not None and torch.load(final, map_location="cpu", weights_only=True)["global_step"] == 6
    a, b = (
        torch.load(p, map_location="cpu", weights_only=True)["state_dict"]
        for p in (final, ref / "checkpoints" / "last.ckpt")
    )
    assert a.keys() == b.keys()
    differ = [k for k in a if not torch.equal(a[k], b[k])]
    assert not differ, f"{len(differ)} of {len(a)} tensors differ, e.g. {differ[:3]}"
    m, mr = read_metrics(run), read_metrics(ref)
    assert m["status"] == mr["status"] == "completed"
    assert m["global_step"] == mr["global_step"] == 6 and m["epochs"] == mr["epochs"] == 3
    for key in ("val_acc1", "best_val_acc1", "val_acc5", "val_loss", "train_acc1", "train_loss"):
        assert m[key] == mr[key], (key, m[key], mr[key])
    assert val_curve(run) == val_curve(ref) and len(val_curve(ref)) == 3
    lines, ref_lines = epoch_lines(run), epoch_lines(ref)
    assert [e for e, _ in ref_lines] == [1, 2, 3]
    assert lines == ref_lines  # one line per epoch, each with the uninterrupted run's numbers
