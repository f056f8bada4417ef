"""``logger=mlflow`` with the default SQLite store: sweep jobs that start at once on a fresh store
all start (MLflow creates a new store's tables, and Lightning the experiment, on first use; two
jobs used to race on both). Four processes, released together, each make the tracker of its run
and log one metric (no training: the race is in the set-up)."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

pytest.importorskip("mlflow")


def _job(args) -> str:
    barrier, root, n = args
    import os

    from omegaconf import OmegaConf

    from binexp.trackers import mlflow_logger

    os.chdir(root)
    barrier.wait()  # every job starts its tracker at the same moment
    try:
        logger = mlflow_logger(OmegaConf.create({}), Path(root) / f"{n}_seed={n}")
        logger.log_metrics({"val/acc1": float(n)}, step=0)
        return "ok"
    except Exception as e:  # noqa: BLE001 - the test reports what each job got
        return f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"


def test_sweep_jobs_starting_at_once_on_a_fresh_sqlite_store_all_start(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Manager().Barrier(4)
    with ctx.Pool(4) as pool:
        results = pool.map(_job, [(barrier, str(tmp_path), n) for n in range(4)])
    assert results == ["ok"] * 4, results
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'outputs' / 'mlflow.db'}")
    (exp,) = [e for e in client.search_experiments() if e.name == "binexp"]
    assert len(client.search_runs([exp.experiment_id])) == 4
