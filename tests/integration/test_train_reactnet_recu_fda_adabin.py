"""ReActNet, ReCU, FDA and AdaBin through the CLI's entry function: each learns on synthetic data far
above chance (10 classes: 10 %) in a few epochs of a half-width Bi-Real ResNet-20."""

from __future__ import annotations

import json
import os
import sys

import pytest

from binexp.cli import main
from tests.conftest import QUICK

SMALL = [
    "model=resnet20_bireal",
    "model.width=0.5",
    "data=synthetic",
    "data.train_size=1024",
    "data.val_size=256",
    "data.batch_size=64",
    "trainer.max_epochs=4",
    "schedule.lr_schedule=cosine",
    "schedule.warmup_epochs=0",
    "callbacks.layer_diagnostics=null",
    *QUICK,
]
ADAM = ["schedule.optimizer=adam", "schedule.lr=0.005", "schedule.weight_decay=0"]
# FDA's weight gradient carries mean|W| (as Bi-Real's paper variant): Adam learns in a few epochs, SGD 0.1
# does not; AdaBin with SGD 0.1 reached 30 % and collapsed in epoch 4 (measured), with Adam it learns.
# Measured best val top-1 (seed 0, 2-core machine shared by other jobs): reactnet 97.7 (epoch 3),
# recu 98.4, fda 65.6, adabin 62.1; 30 leaves room for seeds and still fails at chance (10 %)
METHODS = {"reactnet": [], "recu": [], "adabin": ADAM, "fda": ADAM}


@pytest.mark.slow
@pytest.mark.parametrize("method", sorted(METHODS))
def test_method_learns_synthetic_far_above_chance(method, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["binexp"])
    monkeypatch.delenv("BINEXP_VERB", raising=False)
    run = tmp_path / "run"
    assert main(["train", f"quantizer={method}", *SMALL, *METHODS[method], f"hydra.run.dir={run}"]) == 0
    os.environ.pop("BINEXP_VERB", None)
    m = json.loads((run / "metrics.json").read_text())
    assert m["status"] == "completed" and m["quantizer"] == method and m["bits_per_weight"] == 1.0
    assert m["best_val_acc1"] > 30, m["best_val_acc1"]
