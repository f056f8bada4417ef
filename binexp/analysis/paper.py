"""Whether a run may stand beside its experiment preset's paper number, and which number.

A preset's ``meta`` holds the paper's value (``paper_value``: top-1, ``paper_value_top5``:
top-5). ``binexp report`` prints it beside a run only when the run *is* that experiment:
the run's overrides are composed with the Hydra Compose API and compared with the preset
composed alone (``experiment=<name>``). Any difference in

* ``model.*`` or ``quantizer.*`` (``quantizer.n_in``, ``n_out``, ``n_tap``, ``q``, ``flatten``,
  ``binary_activations`` ... define the bits; the others define the method), except the seed,
* the dataset (``data.name``), the recipe length (``trainer.max_epochs``, ``schedule.epochs``)
  or a cut epoch (``trainer.limit_train_batches``)

turns the paper cell into "—" with the reason (a smoke run says so: ``smoke: synthetic data,
1 epoch``). Records without the experiment choice (hand-made, or older than ``choices`` in
metrics.json) cannot be checked and keep the preset's value."""

from __future__ import annotations

from functools import lru_cache

from binexp.errors import BinexpError

TOP1_METRICS = {"best_val_acc1", "val_acc1"}
TOP5_METRICS = {"best_val_acc5", "val_acc5"}
TOP1_KEYS = ("paper_value", "value", "paper")
TOP5_KEYS = ("paper_value_top5",)
IGNORED = {"quantizer.seed", "model.seed"}  # follow the run's seed, never define the experiment


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
    """The fields that decide comparability, from the composed config (unresolved model and
    quantizer nodes, so ``${seed}`` stays a reference; epochs resolved)."""
    from omegaconf import OmegaConf

    from binexp.preflight import compose

    cfg = compose(list(overrides))
    flat: dict = {}

    def walk(prefix: str, node) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(f"{prefix}.{k}", v)
        else:
            flat[prefix] = node

    for group in ("model", "quantizer"):
        walk(group, OmegaConf.to_container(cfg[group], resolve=False) if cfg.get(group) is not None else {})
    flat["data.name"] = OmegaConf.select(cfg, "data.name")
    flat["epochs"] = OmegaConf.select(cfg, "trainer.max_epochs", default=None)
    flat["limit_train_batches"] = OmegaConf.select(cfg, "trainer.limit_train_batches", default=None)
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


def _epochs(n) -> str:
    return f"{n} epoch" + ("" if n == 1 else "s")


def check(metrics: dict, metric: str) -> tuple[float | None, str]:
    """(paper value, "") when the run matches its preset, (None, reason) when it does not,
    (None, "") when the preset has no number for ``metric``."""
    meta = metrics.get("meta") or {}
    keys = paper_keys(metric)
    value = next((float(meta[k]) for k in keys if isinstance(meta.get(k), (int, float))), None)
    if value is None:
        has_top1 = any(isinstance(meta.get(k), (int, float)) for k in TOP1_KEYS)
        if metric in TOP5_METRICS and has_top1:
            return None, "the paper gives no top-5 value for this preset"
        return None, ""
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
    epochs = metrics.get("max_epochs", run["epochs"])
    smoke, changed = [], []
    if run["data.name"] != preset["data.name"]:
        smoke.append(f"{run['data.name']} data")
    if epochs is not None and preset["epochs"] is not None and epochs != preset["epochs"]:
        smoke.append(_epochs(epochs))
    limit = run["limit_train_batches"]  # Lightning: an int counts batches, a float is a share of the epoch
    cut = not (limit is None or (isinstance(limit, float) and limit >= 1.0)) and limit != preset["limit_train_batches"]
    if cut:
        smoke.append(f"limit_train_batches={limit}")
    for key in sorted(set(run) | set(preset)):
        if key.split(".")[0] in ("model", "quantizer") and key not in IGNORED and run.get(key) != preset.get(key):
            changed.append(f"{key}={run.get(key)} (preset {preset.get(key)})")
    if not smoke and not changed:
        return value, ""
    parts = []
    if smoke:
        label = "smoke: " if (cut or run["data.name"] == "synthetic" or (epochs or 0) < (preset["epochs"] or 0)) else ""
        parts.append(label + ", ".join(smoke) + f" (paper: {preset['data.name']}, {_epochs(preset['epochs'])})")
    if changed:
        parts.append("not the preset: " + ", ".join(changed))
    return None, f"{name}: " + "; ".join(parts)


__all__ = ["check", "experiment_of", "paper_keys"]
