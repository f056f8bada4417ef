"""Experiment trackers besides TensorBoard: Weights & Biases and MLflow, through Lightning's own
``WandbLogger`` and ``MLFlowLogger``. They get the same scalars as TensorBoard (everything the
module and callbacks ``log``) and the resolved config (the module's hyperparameters,
``run_config/...``). ``conf/logger/wandb.yaml`` and ``mlflow.yaml`` document the fields."""

from __future__ import annotations

import os
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from binexp.errors import BinexpError
from binexp.extras import require

DEFAULT_MLFLOW_DB = Path("outputs") / "mlflow.db"  # MLflow 3 refuses new file stores; SQLite is its local default


def _fields(node, allowed: set[str], group: str) -> dict:
    values = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node or {})
    assert isinstance(values, dict)  # a DictConfig's container is a dict
    unknown = sorted(set(values) - allowed)
    if unknown:
        raise BinexpError(
            f"unknown key logger.{group}.{unknown[0]}; valid keys of logger.{group}: {', '.join(sorted(allowed))}"
        )
    return values


WANDB_KEYS = {"project", "entity", "mode", "name", "group", "tags"}
MLFLOW_KEYS = {"tracking_uri", "experiment_name", "run_name", "tags"}


def check(logger_cfg) -> None:
    """Fields known and packages installed, for every tracker the logger node asks for."""
    if not logger_cfg:
        return
    if logger_cfg.get("wandb") is not None:
        w = _fields(logger_cfg.wandb, WANDB_KEYS, "wandb")
        if w.get("mode") not in (None, "online", "offline", "disabled"):
            raise BinexpError(f"logger.wandb.mode must be online, offline, disabled or null, got {w['mode']!r}")
        require("wandb")
    if logger_cfg.get("mlflow") is not None:
        _fields(logger_cfg.mlflow, MLFLOW_KEYS, "mlflow")
        require("mlflow")


def wandb_mode(fields: dict) -> str:
    """``mode`` if set, else ``WANDB_MODE`` from the environment, else offline unless a project is set."""
    return fields.get("mode") or os.environ.get("WANDB_MODE") or ("online" if fields.get("project") else "offline")


def wandb_logger(node, run_dir: Path):
    from lightning.pytorch.loggers import WandbLogger

    f = _fields(node, WANDB_KEYS, "wandb")
    mode = wandb_mode(f)
    logger = WandbLogger(
        name=f.get("name") or run_dir.name,
        save_dir=str(run_dir),
        project=f.get("project") or "binexp",
        entity=f.get("entity"),
        group=f.get("group"),
        tags=list(f.get("tags") or []) or None,
        offline=(mode == "offline"),
        mode=mode,
        log_model=False,
    )
    # Lightning always passes wandb.init(anonymous=None), which W&B >= 0.19 answers with a
    # deprecation warning on every run ("The anonymous setting has no effect"): not passed
    init = getattr(logger, "_wandb_init", None)
    if isinstance(init, dict) and init.get("anonymous") is None:
        init.pop("anonymous", None)
    return logger


def mlflow_tracking_uri(fields: dict) -> str:
    """``tracking_uri`` if set, else ``MLFLOW_TRACKING_URI``, else SQLite in ./outputs/mlflow.db."""
    uri = fields.get("tracking_uri") or os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    db = DEFAULT_MLFLOW_DB.resolve()
    db.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{db}"


def prepare_sqlite_store(uri: str, experiment: str) -> None:
    """A SQLite store's tables and the run's experiment, made by one job at a time: MLflow creates
    a new store's tables (alembic migrations) and Lightning the experiment on first use, so sweep
    jobs that start at once raced (one failed with alembic's ``CommandError`` or a duplicate
    experiment). The first job makes both under an exclusive lock on ``<db>.lock``; the others wait
    for it, then find them. Any other store (a server, Databricks) is left to MLflow."""
    if not uri.startswith("sqlite:///"):
        return
    import fcntl

    from mlflow.tracking import MlflowClient

    db = Path(uri[len("sqlite:///") :])
    db.parent.mkdir(parents=True, exist_ok=True)
    with open(db.with_name(db.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file is closed
        client = MlflowClient(tracking_uri=uri)  # creates and migrates the tables of a new store
        if client.get_experiment_by_name(experiment) is None:
            client.create_experiment(experiment)


def mlflow_logger(node, run_dir: Path):
    from lightning.pytorch.loggers import MLFlowLogger

    f = _fields(node, MLFLOW_KEYS, "mlflow")
    tags = {str(k): str(v) for k, v in (f.get("tags") or {}).items()}
    tags.setdefault("binexp.run_dir", str(run_dir))
    uri, experiment = mlflow_tracking_uri(f), f.get("experiment_name") or "binexp"
    prepare_sqlite_store(uri, experiment)
    return MLFlowLogger(
        experiment_name=experiment,
        run_name=f.get("run_name") or run_dir.name,
        tracking_uri=uri,
        tags=tags,
        log_model=False,
    )


def build(logger_cfg, run_dir: Path) -> list:
    """The tracker loggers the logger node asks for (after :func:`check`)."""
    check(logger_cfg)
    loggers = []
    if logger_cfg and logger_cfg.get("wandb") is not None:
        loggers.append(wandb_logger(logger_cfg.wandb, run_dir))
    if logger_cfg and logger_cfg.get("mlflow") is not None:
        loggers.append(mlflow_logger(logger_cfg.mlflow, run_dir))
    return loggers
