"""Quiet by default, Lightning's output back with verbose; the live bar only on a terminal."""

from __future__ import annotations

import io
import logging
import os

import pytest
from omegaconf import OmegaConf

from binexp.console import DETAIL_LOGGER, make_quiet, make_verbose
from binexp.run import progress_and_noise


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def restore_levels():
    levels = {n: logging.getLogger(n).level for n in ("lightning.pytorch", "lightning.fabric", "lightning")}
    yield
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


@pytest.mark.parametrize(
    "tty,bar_setting,verbose,bar",
    [
        (False, True, False, False),  # a log file or pipe: never a bar (no carriage returns)
        (True, True, False, True),  # a terminal: the Rich bar
        (True, False, False, False),  # trainer.enable_progress_bar=false wins
        (False, True, True, False),  # verbose does not put a bar into a log
    ],
)
def test_bar_only_on_a_terminal(monkeypatch, restore_levels, tty, bar_setting, verbose, bar):
    from lightning.pytorch.callbacks import RichProgressBar

    monkeypatch.setattr("sys.stdout", Terminal() if tty else io.StringIO())
    kwargs = {"enable_progress_bar": bar_setting, "max_epochs": 2}
    callbacks = progress_and_noise(OmegaConf.create({"verbose": verbose}), kwargs)
    assert kwargs["enable_progress_bar"] is bar
    assert [isinstance(c, RichProgressBar) for c in callbacks] == ([True] if bar else [])
    assert kwargs["enable_model_summary"] is verbose  # Lightning's table only with verbose
    expected = logging.INFO if verbose else logging.WARNING
    assert logging.getLogger("lightning.pytorch").getEffectiveLevel() == expected


def test_an_explicit_model_summary_setting_is_kept(restore_levels):
    kwargs = {"enable_model_summary": True}
    progress_and_noise(OmegaConf.create({"verbose": False}), kwargs)
    assert kwargs["enable_model_summary"] is True


def test_detail_lines_reach_the_file_but_not_the_console(tmp_path, restore_levels):
    root = logging.getLogger()
    console, file = logging.StreamHandler(io.StringIO()), logging.FileHandler(tmp_path / "train.log")
    root.addHandler(console)
    root.addHandler(file)
    old = root.level
    root.setLevel(logging.INFO)
    try:
        make_quiet()
        logging.getLogger(f"{DETAIL_LOGGER}.train").info("layer layer1.0.conv1: {'n_in': 8}")
        logging.getLogger("binexp.epoch").info("epoch 1/2")
        make_verbose()
        logging.getLogger(f"{DETAIL_LOGGER}.train").info("layer layer1.0.conv2: {'n_in': 8}")
    finally:
        root.removeHandler(console)
        root.removeHandler(file)
        file.close()
        root.setLevel(old)
    assert console.stream.getvalue().splitlines() == ["epoch 1/2", "layer layer1.0.conv2: {'n_in': 8}"]
    assert (tmp_path / "train.log").read_text().splitlines() == [
        "layer layer1.0.conv1: {'n_in': 8}",
        "epoch 1/2",
        "layer layer1.0.conv2: {'n_in': 8}",
    ]


def test_mlflow_says_nothing_about_routine_steps(capfd, caplog, monkeypatch, restore_levels):
    """``logger=mlflow``'s three lines: MLflow's database set-up (INFO, its own handler on stderr)
    and Lightning's "Experiment ... not found. Creating it." (a warning) are off; MLflow's and
    Lightning's real warnings still show."""
    monkeypatch.delenv("MLFLOW_LOGGING_LEVEL", raising=False)
    monkeypatch.delenv("WANDB_SILENT", raising=False)
    monkeypatch.setattr(logging.getLogger("mlflow"), "level", logging.getLogger("mlflow").level)
    make_quiet()
    import mlflow.store.db.utils  # noqa: F401  (MLflow configures its loggers when imported)

    assert logging.getLogger("mlflow").getEffectiveLevel() == logging.WARNING
    assert os.environ["WANDB_SILENT"] == "true"  # W&B's run set-up and sync hints off (it reads this at init)
    logging.getLogger("mlflow.store.db.utils").info("Creating initial MLflow database tables...")
    logging.getLogger("mlflow.store.db.utils").info("Updating database tables")
    assert capfd.readouterr().err == ""
    logging.getLogger("mlflow.tracking").warning("the store is read-only")
    assert "read-only" in capfd.readouterr().err
    lightning_mlflow = logging.getLogger("lightning.pytorch.loggers.mlflow")
    caplog.clear()  # the MLflow warning above reaches caplog too when an earlier test made mlflow's logger propagate
    with caplog.at_level(logging.WARNING):
        lightning_mlflow.warning("Experiment with name binexp not found. Creating it.")
        lightning_mlflow.warning("Discarding metric with string value lr=x.")
    assert [r.getMessage() for r in caplog.records] == ["Discarding metric with string value lr=x."]
