"""The epoch line's hold on ``binexp.epoch`` (lines held until the epoch's checkpoints are written)
never outlives its run: a run that failed while holding once swallowed every epoch line of the
next run in the same process (in-process tests; a sweep's jobs under Hydra's basic launcher)."""

from __future__ import annotations

import logging

from binexp.lit.epoch_line import EpochLine, _Hold


def _holds() -> list:
    return [f for f in logging.getLogger("binexp.epoch").filters if isinstance(f, _Hold)]


def test_a_failed_run_leaves_no_hold_and_the_next_run_logs(caplog):
    first = EpochLine()
    first.setup(None, None, "fit")  # type: ignore[arg-type]
    first._hold.holding = True  # the epoch ended; its checkpoint write is under way...
    first.on_exception(None, None, OSError("No space left on device"))  # type: ignore[arg-type]
    assert _holds() == []

    stale = EpochLine()
    stale.setup(None, None, "fit")  # type: ignore[arg-type]
    stale._hold.holding = True  # a run that died without on_exception or teardown
    second = EpochLine()
    second.setup(None, None, "fit")  # type: ignore[arg-type]
    assert _holds() == [second._hold]
    with caplog.at_level(logging.INFO, logger="binexp.epoch"):
        logging.getLogger("binexp.epoch").info("epoch 1/2  train loss 2.3026")
    assert [r.getMessage() for r in caplog.records] == ["epoch 1/2  train loss 2.3026"]
    second.teardown(None, None, "fit")  # type: ignore[arg-type]
    assert _holds() == []
