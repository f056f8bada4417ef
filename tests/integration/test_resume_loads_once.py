"""``binexp train resume=<dir>`` reads each checkpoint file at most once before its first
training step: choosing the checkpoint (``last.ckpt``, the best epoch, an hpc checkpoint),
checking it before Hydra starts, planning the start inside the job, and Lightning's restore all
share one read per file. Counted in-process through the CLI's entry function, at ``torch.load``
(the one function every read of a checkpoint goes through)."""

from __future__ import annotations

import collections
import os
import sys
from pathlib import Path

import lightning.pytorch as L
import pytest
import torch

from binexp.cli import main
from tests.conftest import QUICK

TINY = [
    "data=synthetic",
    "data.train_size=64",
    "data.val_size=32",
    "data.batch_size=32",
    "data.image_size=16",
    "model.width=0.25",
    "trainer.limit_val_batches=1",
    "callbacks.layer_diagnostics=null",
    *QUICK,
]


@pytest.fixture
def in_process(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BINEXP_VERB", "")
    monkeypatch.setattr(sys, "argv", ["binexp"])

    def run(args: list[str]) -> int:
        try:
            return main(args)
        except SystemExit as e:
            return int(e.code or 0)
        finally:
            os.environ.pop("BINEXP_VERB", None)

    return run


class FirstStep(L.Callback):
    """Marks the first training step in the log of reads."""

    def __init__(self, reads: list) -> None:
        self.reads = reads

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if "first step" not in self.reads:
            self.reads.append("first step")


def test_resume_reads_each_checkpoint_once_before_the_first_step(in_process, tmp_path, monkeypatch):
    run = tmp_path / "run"
    assert in_process(["train", "quantizer=xnor", *TINY, "trainer.max_epochs=1", f"hydra.run.dir={run}"]) == 0
    files = sorted(p.name for p in (run / "checkpoints").glob("*.ckpt"))
    assert "last.ckpt" in files and len(files) >= 2, files  # last.ckpt and the best epoch's: both candidates

    reads: list = []
    real_load = torch.load

    def counting_load(f, *args, **kwargs):
        if isinstance(f, (str, Path)):
            reads.append(Path(f).resolve())
        return real_load(f, *args, **kwargs)

    from binexp import run as run_module

    monkeypatch.setattr(torch, "load", counting_load)
    monkeypatch.setattr(run_module, "EXTRA_CALLBACKS", [lambda: FirstStep(reads)])
    assert in_process(["train", f"resume={run}", "trainer.max_epochs=2"]) == 0

    assert "first step" in reads, "the resumed run never trained"
    before = reads[: reads.index("first step")]
    counts = collections.Counter(p.name for p in before)
    assert counts["last.ckpt"] == 1, counts  # Lightning's restore reads it: once, and only then
    assert max(counts.values()) == 1, f"read more than once before the first step: {dict(counts)}"
