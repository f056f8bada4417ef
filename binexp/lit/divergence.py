"""Divergence report: says, once, when a run collapses or its loss stops being finite, and names
the per-layer statistics that moved most in that epoch relative to their own history.

Each epoch, on rank 0, after that epoch's validation, :class:`DivergenceMonitor` takes a snapshot
of the quantities that move when a binary network falls apart: every binarized layer's
diagnostics (angular bias, quantization error, a method's ``extra_stats`` such as RBNN's θ
gradient norm, max |θ − π/2|, α and surrogate t/k), the layer's sign flip rate since the previous
epoch, the gradient norm of its parameters at the epoch's last step, and every BatchNorm's mean
|γ|. Two events are reported:

* **collapse**: validation top-1 falls below its best so far by more than ``drop`` of the way
  from that best back to chance (100 / classes), by at least ``min_points`` points, and by more
  than three binomial standard deviations of an accuracy near the best measured on the epoch's
  validation samples, 100·sqrt(p(1 − p)/n) (11 points on a 128-image smoke batch at p = 0.22, so
  noise there is not a collapse; under the other two bounds from a few thousand images on);
* **non-finite values**: the epoch's train or validation loss, or a layer's weights (any of its
  statistics), is NaN or infinite; with
  ``stop_on_nonfinite`` the run then stops at the end of that epoch (what follows would train
  NaN weights), ending as ``completed`` with the reason recorded.

The first event gets one log line after the epoch line, e.g.::

    collapsed at epoch 16: val top-1 34.20% (best 58.50%); layer1.0.conv1 θ gradient norm ×270, flip rate ×90

and ``metrics.json`` records it as ``divergence`` (epoch, kind, accuracies, and the statistics that
moved most: layer, statistic, value now, the median of its previous epochs and the factor), which
``binexp report`` marks. A statistic's factor is ``(|now| + ε) / (median |previous| + ε)`` (or
its inverse when it fell), over the epochs before this one, with ε = 1e-6 (1e-3 for shares of
weights such as the flip rate); non-finite values rank first. The
history is part of the callback's state, so a resumed run compares against the same epochs.
"""

from __future__ import annotations

import logging
import math
import statistics
from typing import Any

import lightning.pytorch as L
import torch
from lightning.pytorch.callbacks import Callback
from torch import nn

from binexp.analysis.diagnostics import flip_rate, layer_stats, weight_signs
from binexp.quant.layers import quantized_layers

log = logging.getLogger("binexp.epoch")

# how a statistic reads in the line (anything else keeps its tag name)
LABELS = {
    "rbnn_theta_grad_norm": "θ gradient norm",
    "rbnn_theta_grad_norm_max": "largest θ gradient norm of the epoch",
    "rbnn_theta_dev_max": "max |θ−π/2|",
    "rbnn_alpha_mean": "α",
    "rbnn_t": "weight surrogate t",
    "rbnn_k": "weight surrogate k",
    "rbnn_act_t": "activation surrogate t",
    "rbnn_act_k": "activation surrogate k",
    "flip_rate": "flip rate",
    "rbnn_update_flips": "flips of the rotation update",
    "rbnn_rotation_flips": "flips of the rotation",
    "grad_norm": "gradient norm",
    "bn_scale": "BN scale |γ|",
    "angular_bias": "angular bias (degrees)",
    "quant_error": "quantization error",
    "quant_error_unscaled": "unscaled quantization error",
}
EPS = 1e-6
# shares of weights (in [0, 1]) move against a floor of one weight in a thousand: a flip rate going
# from 0.001 to 0 is noise, not what broke (it ranked first in a collapsed RBNN run before this floor)
FLOOR = {"flip_rate": 1e-3, "rbnn_update_flips": 1e-3, "rbnn_rotation_flips": 1e-3}
HISTORY = 8  # epochs of history a statistic is compared with (their median)


def _finite(value: float) -> bool:
    return math.isfinite(value)


def snapshot(pl_module: nn.Module, previous_signs: dict[str, torch.Tensor]) -> dict[str, float]:
    """``{"<stat>/<layer>": value}`` for the network's binarized layers and BatchNorms at this moment
    (``previous_signs`` is updated in place for the next epoch's flip rates)."""
    net = getattr(pl_module, "net", pl_module)
    out: dict[str, float] = {}
    with torch.no_grad():
        for name, layer in quantized_layers(net):
            for stat, value in layer_stats(layer).items():
                if torch.as_tensor(value).numel() == 1:
                    out[f"{stat}/{name}"] = float(value)
            signs = weight_signs(layer)
            prev = previous_signs.get(name)
            if prev is not None and prev.shape == signs.shape:
                out[f"flip_rate/{name}"] = float(flip_rate(signs, prev))
            previous_signs[name] = signs
            grads = [p.grad.detach().float().norm() for p in layer.parameters() if p.grad is not None]
            if grads:
                out[f"grad_norm/{name}"] = float(torch.stack(grads).norm())
        for name, module in net.named_modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.weight is not None:
                out[f"bn_scale/{name}"] = float(module.weight.detach().abs().mean())
    return out


def movers(now: dict[str, float], history: dict[str, list[float]], top: int = 10) -> list[dict]:
    """The statistics of ``now`` that moved most against the median of their ``history``."""
    moved: list[dict[str, Any]] = []
    for key, value in now.items():
        past = [v for v in history.get(key, []) if _finite(v)]
        if not past:
            continue
        base = statistics.median(abs(v) for v in past)
        stat, _, layer = key.partition("/")
        if _finite(value):
            eps = FLOOR.get(stat, EPS)
            ratio = (abs(value) + eps) / (base + eps)
            factor = max(ratio, 1.0 / ratio)
        else:
            factor = math.inf
        moved.append({"layer": layer, "stat": stat, "now": value, "before": base, "factor": factor})
    moved.sort(key=lambda m: -m["factor"])
    return [m for m in moved[:top] if m["factor"] > 1.5 or not _finite(m["now"])]


def describe(m: dict) -> str:
    label = LABELS.get(m["stat"], m["stat"])
    if not _finite(m["now"]):
        change = f"→ {m['now']}"
    elif abs(m["now"]) >= m["before"]:
        change = f"×{m['factor']:.3g}"
    else:
        change = f"÷{m['factor']:.3g}"
    return f"{m['layer']} {label} {change}"


def headline(moved: list[dict], n: int = 3) -> str:
    """The line's summary of ``moved``: the top mover of each of the first ``n`` statistics to
    appear (a statistic and its ``_max`` variant count as one), one clause per layer, e.g.
    ``layer1.0.conv1 θ gradient norm ×270, flip rate ×90; layer1.1.conv2 α ÷3``."""
    picked: list[dict] = []
    for m in moved:
        family = m["stat"].removesuffix("_max")
        if all(p["stat"].removesuffix("_max") != family for p in picked):
            picked.append(m)
        if len(picked) == n:
            break
    clauses: dict[str, list[str]] = {}
    for m in picked:
        clauses.setdefault(m["layer"], []).append(describe(m).removeprefix(f"{m['layer']} "))
    return "; ".join(f"{layer} {', '.join(parts)}" for layer, parts in clauses.items())


def _value(metric) -> float | None:
    if metric is None:
        return None
    try:
        return float(metric.compute() if hasattr(metric, "compute") else metric)
    except Exception:  # noqa: BLE001 - a metric with no update yet
        return None


class DivergenceMonitor(Callback):
    """See the module docstring. ``drop``: fraction of (best − chance) that val top-1 may fall
    before the run counts as collapsed; ``min_points``: and at least this many points (a run
    whose best is less than twice that above chance has not learned, so it cannot collapse);
    ``stop_on_nonfinite``: stop the run at the end of an epoch whose loss is not finite."""

    def __init__(self, drop: float = 0.25, min_points: float = 5.0, stop_on_nonfinite: bool = True) -> None:
        self.drop = float(drop)
        self.min_points = float(min_points)
        self.stop_on_nonfinite = bool(stop_on_nonfinite)
        self.history: dict[str, list[float]] = {}
        self.best: float | None = None
        self.event: dict | None = None
        self._signs: dict[str, torch.Tensor] = {}

    def state_dict(self) -> dict:
        return {"history": self.history, "best": self.best, "event": self.event}

    def load_state_dict(self, state: dict) -> None:
        self.history = {k: list(v) for k, v in (state.get("history") or {}).items()}
        self.best = state.get("best")
        self.event = state.get("event")

    def run_record(self) -> dict:
        return {"divergence": self.event} if self.event else {}

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        epoch = trainer.current_epoch + 1  # 1-based, as the epoch line prints it
        train_loss = _value(getattr(pl_module, "train_loss", None))
        m = trainer.callback_metrics
        val = _value(m.get("val/acc1"))
        val_loss = _value(m.get("val/loss"))
        nonfinite = [
            name for name, v in (("train loss", train_loss), ("val loss", val_loss)) if v is not None and not _finite(v)
        ]
        now = snapshot(pl_module, self._signs)
        bad = sorted({key.partition("/")[2] for key, v in now.items() if not _finite(v)})
        if bad:
            nonfinite.append(f"the weights of {bad[0]}" + (f" and {len(bad) - 1} more layers" if len(bad) > 1 else ""))
        if nonfinite and self.stop_on_nonfinite:
            trainer.should_stop = True  # the weights are the same on every rank, and so is this decision
        if not trainer.is_global_zero:
            return
        kind = None
        if nonfinite:
            kind = f"{' and '.join(nonfinite)} not finite"
        elif val is not None and self.best is not None:
            chance = 100.0 / max(int(getattr(pl_module, "num_classes", 0) or 0), 1)
            learned = self.best - chance >= 2 * self.min_points  # a run that never learned cannot collapse
            bound = max(self.min_points, self.drop * (self.best - chance), noise_band(self.best, _val_samples(trainer)))
            if learned and self.best - val > bound:
                kind = "collapsed"
        if kind is not None and self.event is None:
            moved = movers(now, self.history)
            self.event = {
                "epoch": epoch,
                "kind": "collapse" if kind == "collapsed" else "non-finite",
                "what": kind,
                "val_acc1": None if val is None else _json_float(val),
                "best_val_acc1": self.best,
                "train_loss": None if train_loss is None else _json_float(train_loss),
                "moved": [{**m, "now": _json_float(m["now"]), "factor": _json_float(m["factor"])} for m in moved],
            }
            if kind == "collapsed":
                head = f"collapsed at epoch {epoch}: val top-1 {val:.2f}% (best {self.best:.2f}%)"
            else:
                head = f"diverged at epoch {epoch}: {kind}"
                if self.stop_on_nonfinite:
                    head += " (training stops after this epoch)"
            detail = headline(moved)
            log.warning(head + (f"; {detail}" if detail else ""))
        for key, value in now.items():
            series = self.history.setdefault(key, [])
            series.append(value)
            del series[:-HISTORY]
        if val is not None and _finite(val):
            self.best = val if self.best is None else max(self.best, val)


def noise_band(best: float, samples: int | None) -> float:
    """Three binomial standard deviations, in points, of a top-1 accuracy of ``best`` % measured on
    ``samples`` images (0 when the count is unknown)."""
    if not samples:
        return 0.0
    p = min(max(best / 100.0, 0.0), 1.0)
    return 300.0 * math.sqrt(p * (1.0 - p) / samples)


def _val_samples(trainer: Any) -> int | None:
    """Validation images seen this epoch over all ranks: the loader's dataset, or fewer when
    ``limit_val_batches`` cuts it (batches x batch size x ranks); None when it cannot be told."""
    loaders = getattr(trainer, "val_dataloaders", None)
    loader: Any = loaders[0] if isinstance(loaders, (list, tuple)) and loaders else loaders
    try:
        total = len(loader.dataset)
    except (AttributeError, TypeError):
        return None
    batches = getattr(trainer, "num_val_batches", None)
    batches = batches[0] if isinstance(batches, (list, tuple)) and batches else batches
    size = getattr(loader, "batch_size", None)
    if isinstance(batches, int) and isinstance(size, int) and size > 0:
        total = min(total, batches * size * int(getattr(trainer, "world_size", 1) or 1))
    return total


def _json_float(value: float) -> float | str:
    """A float for metrics.json (JSON has no NaN or infinity: those become strings)."""
    return value if _finite(value) else str(value)


__all__ = ["DivergenceMonitor", "headline", "movers", "noise_band", "snapshot"]
