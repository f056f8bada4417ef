"""A run that diverges ends cleanly and says so once (epoch line, metrics.json, report); one that
does not gets no such line."""

from __future__ import annotations

import pytest

from binexp.cli import main as cli_main
from tests.conftest import QUICK, read_metrics

TINY = [
    "data=synthetic",
    "data.train_size=128",
    "data.val_size=64",
    "data.batch_size=32",
    "data.eval_batch_size=64",
    "data.image_size=16",
    "trainer.limit_train_batches=2",
    "trainer.limit_val_batches=1",
    "quantizer=xnor",
    *QUICK,
]


def test_absurd_lr_diverges_cleanly_and_is_marked(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "run"
    args = ["train", *TINY, "schedule.lr=1000", "schedule.lr_schedule=cosine", "trainer.max_epochs=6"]
    assert cli_main([*args, f"hydra.run.dir={run}"]) == 0
    m = read_metrics(run)
    event = m["divergence"]
    assert m["status"] == "completed" and event["kind"] == "non-finite"
    assert m["epochs"] == event["epoch"] < 6  # stopped at the end of the epoch that went non-finite
    log = (run / "train.log").read_text()
    lines = [line for line in log.splitlines() if "diverged at epoch" in line]
    assert len(lines) == 1 and f"diverged at epoch {event['epoch']}: " in lines[0]
    assert "not finite (training stops after this epoch)" in lines[0] and "Traceback" not in log
    epoch_lines = [line for line in log.splitlines() if "] - epoch " in line]
    assert len(epoch_lines) == event["epoch"]
    capsys.readouterr()
    assert cli_main(["report", str(run)]) == 0
    assert f"completed; diverged at epoch {event['epoch']}" in capsys.readouterr().out


@pytest.mark.parametrize("quantizer", ["xnor"])
def test_a_healthy_run_gets_no_divergence_line(quantizer, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "run"
    assert cli_main(["train", *TINY, "trainer.max_epochs=3", f"hydra.run.dir={run}"]) == 0
    log = (run / "train.log").read_text()
    assert "collapsed" not in log and "diverged" not in log
    assert "divergence" not in read_metrics(run)
    # the console line starts with what matters; train.log keeps the [time][logger][level] prefix
    out = capsys.readouterr().out.splitlines()
    assert [line for line in out if line.startswith("epoch ")][0].startswith("epoch 1/3  train loss ")
    assert not [line for line in out if line.startswith("[20")]
    assert "[binexp.epoch][INFO] - epoch 1/3  train loss " in log
    assert "completed after 3 epochs: " in out[-1]
