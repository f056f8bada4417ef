"""Whether a run may stand beside its experiment preset's paper number, and which number.

A preset's ``meta`` holds the paper's value (``paper_value``: top-1, ``paper_value_top5``:
top-5). ``binexp report`` prints it beside a run only when the run *is* that experiment: the
run's overrides are composed with the Hydra Compose API and compared with the preset composed
alone (``experiment=<name>``), key by key over the whole config (Hydra's own node aside), and
they must agree everywhere except on :data:`NEUTRAL`, the keys that cannot change the result
(logging, paths, progress bar, diagnostics, checkpoints, the seed, and the device count, since
``data.batch_size`` is the global batch). Anything else that differs (the learning rate, the
batch size, the angle penalty, a quantizer field ...) turns the paper cell into "—" with the
reason; a smoke run says so (``smoke: synthetic data, 1 epoch``). Records without the experiment
choice (hand-made, or older than ``choices`` in metrics.json) cannot be checked and keep the
preset's value."""

from __future__ import annotations

from functools import lru_cache

from binexp.errors import BinexpError

TOP1_METRICS = {"best_val_acc1", "val_acc1"}
TOP5_METRICS = {"best_val_acc5", "val_acc5"}
TOP1_KEYS = ("paper_value", "value", "paper")
TOP5_KEYS = ("paper_value_top5",)
# Keys (and whole subtrees) that cannot change a run's result: a run differing from its preset
# only here still stands beside the paper's number. Everything else is recipe.
NEUTRAL = (
    "seed",  # seeds fold into mean ± std
    "quantizer.seed",
    "model.seed",
    "name",
    "meta",
    "verbose",
    "resume",
    "compile",  # same maths, compiled
    "channels_last",  # memory layout
    "data.root",
    "data.download",
    "data.eval_batch_size",  # evaluation in eval mode: per-sample, batch-independent
    "data.resident_on_device",
    "data.num_workers",
    "data.pin_memory",
    "data.persistent_workers",
    "trainer.accelerator",
    "trainer.devices",  # data.batch_size is the global batch, split across ranks
    "trainer.num_nodes",
    "trainer.strategy",
    "trainer.log_every_n_steps",
    "trainer.num_sanity_val_steps",
    "trainer.enable_progress_bar",
    "trainer.enable_model_summary",
    "trainer.deterministic",
    "trainer.benchmark",
    "logger",
    "callbacks.model_checkpoint",
    "callbacks.last_checkpoint",
    "callbacks.layer_diagnostics",
    "callbacks.act_diagnostics",
    "callbacks.lr_monitor",
)
# reported as the smoke part of the reason, not again as changed keys
SMOKE_KEYS = ("trainer.max_epochs", "schedule.epochs", "trainer.limit_train_batches", "trainer.limit_val_batches")


def neutral(key: str) -> bool:
    """Whether ``key`` (dotted) is in, or under, one of :data:`NEUTRAL`."""
    return any(key == n or key.startswith(n + ".") for n in NEUTRAL)


def paper_keys(metric: str) -> tuple[str, ...]:
    """The ``meta`` keys that hold the paper's number for ``metric`` (none for other metrics)."""
    if metric in TOP1_METRICS:
        return TOP1_KEYS
    if metric in TOP5_METRICS:
        return TOP5_KEYS
    return ()


def experiment_of(metrics: dict) -> str | None:
    choice = (metrics.get("choices") or {}).get("experiment")
    if choice:
        return str(choice)
    for item in metrics.get("overrides") or []:
        key, _, value = str(item).lstrip("+").partition("=")
        if key == "experiment" and value:
            return value
    return None


@lru_cache(maxsize=256)
def _compose(overrides: tuple[str, ...]) -> dict:
    """The composed config, flat (``quantizer.n_in``: value), Hydra's node left out, unresolved (so
    ``${seed}`` stays a reference); plus ``@epochs`` and ``@limit_train_batches`` resolved."""
    from omegaconf import OmegaConf

    from binexp.config import compose

    cfg = compose(list(overrides))
    flat: dict = {}

    def walk(prefix: str, node) -> None:
        if isinstance(node, dict) and node:
            for k, v in node.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        else:
            flat[prefix] = tuple(node) if isinstance(node, list) else node

    tree = OmegaConf.to_container(cfg, resolve=False)
    assert isinstance(tree, dict)
    tree.pop("hydra", None)
    walk("", tree)
    flat["@epochs"] = OmegaConf.select(cfg, "trainer.max_epochs", default=None)
    flat["@limit_train_batches"] = OmegaConf.select(cfg, "trainer.limit_train_batches", default=None)
    return flat


def _run_overrides(metrics: dict) -> tuple[str, ...]:
    keep = []
    for item in metrics.get("overrides") or []:
        key = str(item).lstrip("+~").partition("=")[0]
        if key == "seed" or key.startswith("hydra.") or key in ("resume", "init_from"):
            continue
        keep.append(str(item))
    return tuple(keep)


def composed(metrics: dict) -> dict:
    """The run's composed model.* / quantizer.* fields, data.name and epochs (cached)."""
    return _compose(_run_overrides(metrics))


def _show(value) -> str:
    return str(list(value) if isinstance(value, tuple) else value)


def _epochs(n) -> str:
    return f"{n} epoch" + ("" if n == 1 else "s")


def check(metrics: dict, metric: str) -> tuple[float | None, str]:
    """(paper value, "") when the run matches its preset, (None, reason) when it does not,
    (None, the preset's ``meta.paper_note``) when the preset has no number for ``metric`` but says
    why ("—" and the reason, e.g. BiBench's tables not read), else (None, "")."""
    meta = metrics.get("meta") or {}
    keys = paper_keys(metric)
    value = next((float(meta[k]) for k in keys if isinstance(meta.get(k), (int, float))), None)
    if value is None:
        has_top1 = any(isinstance(meta.get(k), (int, float)) for k in TOP1_KEYS)
        if metric in TOP5_METRICS and has_top1:
            return None, "the paper gives no top-5 value for this preset"
        note = meta.get("paper_note")
        return None, (note.strip() if keys and isinstance(note, str) else "")
    name = experiment_of(metrics)
    if name is None:
        return value, ""
    try:
        preset = _compose((f"experiment={name}",))
    except BinexpError as e:
        return None, f"preset {name} does not compose ({e})"
    try:
        run = _compose(_run_overrides(metrics))
    except BinexpError as e:
        return None, f"the run's overrides do not compose ({e})"
    epochs = metrics.get("max_epochs", run["@epochs"])
    smoke, changed = [], []
    other_data = run.get("data.name") != preset.get("data.name")
    if other_data:
        smoke.append(f"{run.get('data.name')} data")
    if epochs is not None and preset["@epochs"] is not None and epochs != preset["@epochs"]:
        smoke.append(_epochs(epochs))
    limit = run["@limit_train_batches"]  # Lightning: an int counts batches, a float is a share of the epoch
    cut = not (limit is None or (isinstance(limit, float) and limit >= 1.0)) and limit != preset["@limit_train_batches"]
    if cut:
        smoke.append(f"limit_train_batches={limit}")
    if run.get("trainer.limit_val_batches") != preset.get("trainer.limit_val_batches"):
        smoke.append(f"limit_val_batches={run.get('trainer.limit_val_batches')}")
    for key in sorted(k for k in set(run) | set(preset) if not k.startswith("@")):
        if neutral(key) or key in SMOKE_KEYS or (other_data and key.startswith("data.")):
            continue
        if run.get(key) != preset.get(key):
            changed.append(f"{key}={_show(run.get(key))} (preset {_show(preset.get(key))})")
    if not smoke and not changed:
        return value, ""
    parts = []
    if smoke:
        label = (
            "smoke: "
            if (cut or run.get("data.name") == "synthetic" or (epochs or 0) < (preset["@epochs"] or 0))
            else ""
        )
        parts.append(label + ", ".join(smoke) + f" (paper: {preset.get('data.name')}, {_epochs(preset['@epochs'])})")
    if changed:
        parts.append("not the preset: " + ", ".join(changed))
    return None, f"{name}: " + "; ".join(parts)


__all__ = ["check", "experiment_of", "paper_keys"]
