"""A test callback: what every rank holds of the binarized layers' state.

Not part of binexp, and no config can name it: a test adds it to a real ``binexp train`` process
(and to its DDP children) through the test launcher, e.g.::

    run_cli(args, tmp, callbacks=[("tests.support.rank_state.RankStateDump", {"trace": True})])

At fit end each rank writes ``<run dir>/rank_state/rank<global rank>.pt``, a dict with

* ``state``: ``{layer: {key: tensor}}``, the persistent state (parameters and buffers, e.g.
  RBNN's R1, R2, theta, rotation_updates) of every binarized layer at fit end, on the CPU;
* ``start_state``: the same at train start, i.e. after a resumed run restored its checkpoint
  and before any epoch-start work;
* ``trace`` (``trace=true``): one entry per hook call (fit/train start, train epoch start,
  train batch start/end, validation start/end, train epoch end) with a fingerprint of each
  layer's non-parameter buffers (R1, R2, ...), so a test can see exactly when they changed.
  Callbacks run in list order, and ``QuantizerSchedule`` comes first, so the fingerprint at
  ``train_epoch_start``/``train_batch_start`` is taken *after* that hook's quantizer work.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import lightning.pytorch as L
import torch
from lightning.pytorch.callbacks import Callback

from binexp.quant.layers import quantized_layers


def buffer_fingerprint(layer: torch.nn.Module) -> str:
    """sha1 over the bytes of a layer's persistent buffers (R1, R2, counters...)."""
    h = hashlib.sha1()
    for name, buf in sorted(layer.state_dict().items()):
        if any(name == p for p, _ in layer.named_parameters()):
            continue
        h.update(name.encode())
        h.update(buf.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def layer_states(pl_module: torch.nn.Module) -> dict[str, dict[str, torch.Tensor]]:
    return {
        name.removeprefix("net."): {k: v.detach().cpu().clone() for k, v in layer.state_dict().items()}
        for name, layer in quantized_layers(pl_module)
    }


class RankStateDump(Callback):
    def __init__(self, trace: bool = False, dirname: str = "rank_state") -> None:
        self.trace_enabled = trace
        self.dirname = dirname
        self.trace: list[dict] = []
        self.start_state: dict = {}

    def _record(self, event: str, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self.trace_enabled:
            return
        self.trace.append(
            {
                "event": event,
                "epoch": int(trainer.current_epoch),
                "global_step": int(trainer.global_step),
                "sanity": bool(trainer.sanity_checking),
                "layers": {
                    name.removeprefix("net."): buffer_fingerprint(layer) for name, layer in quantized_layers(pl_module)
                },
            }
        )

    def on_fit_start(self, trainer, pl_module) -> None:
        self._record("fit_start", trainer, pl_module)

    def on_train_start(self, trainer, pl_module) -> None:
        self._record("train_start", trainer, pl_module)
        self.start_state = layer_states(pl_module)

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._record("train_epoch_start", trainer, pl_module)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        self._record("train_batch_start", trainer, pl_module)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        self._record("train_batch_end", trainer, pl_module)

    def on_validation_start(self, trainer, pl_module) -> None:
        self._record("validation_start", trainer, pl_module)

    def on_validation_end(self, trainer, pl_module) -> None:
        self._record("validation_end", trainer, pl_module)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self._record("train_epoch_end", trainer, pl_module)

    def on_fit_end(self, trainer, pl_module) -> None:
        self._record("fit_end", trainer, pl_module)
        state = layer_states(pl_module)
        out = Path(trainer.default_root_dir) / self.dirname
        out.mkdir(parents=True, exist_ok=True)
        torch.save(
            {
                "rank": trainer.global_rank,
                "world_size": trainer.world_size,
                "state": state,
                "start_state": self.start_state,
                "trace": self.trace,
            },
            out / f"rank{trainer.global_rank}.pt",
        )
