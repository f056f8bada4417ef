"""One epoch numbering, 1-based, everywhere a person reads it, for a run interrupted in its second
epoch and resumed: the epoch lines, the interrupt message, the best checkpoint's name, `binexp
status`, `binexp report` and the progress bar's description."""

from __future__ import annotations

import re
import signal
from types import SimpleNamespace

import pytest

from binexp.cli import main as cli_main
from binexp.lit.epoch_line import rich_bar
from tests.conftest import QUICK, read_metrics, run_cli

# 4 batches per epoch, 3 epochs: global steps 1..12; step 6 is the second batch of epoch 2
TINY = [
    "quantizer=xnor",
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


@pytest.mark.slow
def test_one_numbering_through_an_interrupt_and_a_resume(tmp_path, capsys):
    run = tmp_path / "run"
    kill = (
        "tests.support.killpoint.KillAt",
        {"at": "batch", "signal": "SIGINT", "step": 6, "once_file": str(tmp_path / "fired")},
    )
    r = run_cli(["train", *TINY, f"hydra.run.dir={run}"], tmp_path, env=ENV, callbacks=[kill])
    assert r.returncode == 128 + signal.SIGINT, r.stderr[-3000:]
    (line,) = [x for x in r.stderr.splitlines() if x.startswith("binexp: interrupted")]
    assert "at epoch 2, step 6" in line  # the second epoch was running
    r = run_cli(["train", f"resume={run}"], tmp_path, env=ENV)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "exists and is not empty" not in r.stderr  # Lightning's note on its own checkpoints/ folder
    assert f"resuming {run} from last.ckpt at epoch 2, step 6" in r.stdout + r.stderr  # where the interrupt said

    log = (run / "train.log").read_text()
    epochs = [int(m.group(1)) for m in re.finditer(r"\] - epoch (\d+)/3 ", log)]
    assert epochs == [1, 2, 3]  # one line per epoch, counted from 1
    m = read_metrics(run)
    assert m["epochs"] == 3
    best_epoch = 1 + max(range(3), key=lambda e: (_val(log, e + 1), -e))  # the first epoch with the best val
    (best,) = (run / "checkpoints").glob("epoch*-acc*.ckpt")
    assert best.name.startswith(f"epoch{best_epoch:03d}-")
    capsys.readouterr()
    assert cli_main(["status", str(run)]) == 0
    assert re.search(r"\b3/3\b|epoch 3\b", capsys.readouterr().out)
    assert cli_main(["report", str(run)]) == 0
    header, _, row = capsys.readouterr().out.strip().splitlines()[-3:]
    cells = dict(zip([c.strip() for c in header.split("|")], [c.strip() for c in row.split("|")]))
    assert cells["epochs"] == "3"


def _val(log: str, epoch: int) -> float:
    return float(re.search(rf"\] - epoch {epoch}/3 .*?val top-1 ([\d.]+)%", log).group(1))


def test_progress_bar_counts_from_one():
    bar = rich_bar()
    bar._trainer = SimpleNamespace(max_epochs=2)
    assert bar._get_train_description(0).strip() == "Epoch 1/2"
    assert bar._get_train_description(1).strip() == "Epoch 2/2"
