"""Angular bias of activations (RBNN reviewer 1's question; Lin et al., RBNN, NeurIPS 2020,
arXiv 2009.13055: the paper rotates weights only), and the per-layer values ``metrics.json``
keeps of a run (``alpha_final``, ``angular_bias_final``, ``act_angular_bias``).

:class:`ActivationDiagnostics` keeps the first validation batch it sees (batch 0 of the first
validation, sanity check included: the same images every epoch, as long as the validation set is
not shuffled) and, every ``every_n_epochs`` epochs after validation, on rank 0 only, runs the
network on it in eval mode with a forward pre-hook on every binarized layer. Per layer it
measures the tensor the layer binarizes (``layer.act_latent(x)``: x for XNOR-Net, Bi-Real and
FleXOR, the per-sample standardised a_s for RBNN), each sample flattened:

    act_angular_bias = mean_i angle(a_i, sign a_i) in degrees,  cos = ||a_i||_1 / (||a_i||_2 sqrt(n))

(0 = on a binary vertex, higher = more bias; 37.0 for Gaussian a_i, whose cosine is sqrt(2/pi)).
It is logged as ``act_angular_bias/<layer>`` through every Lightning logger at the global step,
and kept for ``metrics.json``. Layers whose
activations stay real (``binary_activations=false``) are skipped."""

from __future__ import annotations

import lightning.pytorch as L
import torch
from lightning.pytorch.callbacks import Callback
from torch import nn

from binexp.analysis.diagnostics import activation_angular_bias, angular_bias
from binexp.quant.layers import quantized_layers


@torch.no_grad()
def measure_act_angular_bias(net: torch.nn.Module, x: torch.Tensor, channels_last: bool = False) -> dict[str, float]:
    """{layer: act_angular_bias} for one forward of ``net`` (eval mode, eager) on ``x``."""
    found: dict[str, torch.Tensor] = {}
    handles = []
    for name, layer in quantized_layers(net):

        def hook(module, args, name=name):
            a = module.act_latent(args[0])
            if a is not None:
                found[name] = activation_angular_bias(a)

        handles.append(layer.register_forward_pre_hook(hook))
    was_training = net.training
    net.eval()
    try:
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        net.forward(x)  # forward, not __call__: runs eagerly even when the net was compiled in place
    finally:
        for h in handles:
            h.remove()
        net.train(was_training)
    if not found:
        return {}
    values = torch.stack(list(found.values())).tolist()  # one device sync
    return dict(zip(found, values))


class ActivationDiagnostics(Callback):
    """Per binarized layer, the mean angle(a, sign a) in degrees of its binarized input on a fixed validation
    batch (up to ``max_samples`` images), every ``every_n_epochs`` epochs; rank 0 only."""

    def __init__(self, every_n_epochs: int = 1, max_samples: int = 128) -> None:
        self.every_n_epochs = max(1, int(every_n_epochs))
        self.max_samples = max(1, int(max_samples))
        self._batch: torch.Tensor | None = None
        self.latest: dict[str, float] = {}

    def on_validation_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        if self._batch is None and batch_idx == 0 and dataloader_idx == 0 and trainer.is_global_zero:
            self._batch = batch[0][: self.max_samples].detach().clone()

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero or self._batch is None:
            return
        if trainer.current_epoch % self.every_n_epochs:
            return
        net = pl_module.net
        assert isinstance(net, nn.Module)
        values = measure_act_angular_bias(net, self._batch, bool(pl_module.__dict__.get("channels_last")))
        if not values:
            return
        self.latest = {name.removeprefix("net."): v for name, v in values.items()}
        scalars = {f"act_angular_bias/{name}": v for name, v in self.latest.items()}
        for logger in trainer.loggers:
            logger.log_metrics(scalars, step=trainer.global_step)

    def run_record(self) -> dict:
        if not self.latest:
            return {}
        return {
            "act_angular_bias": dict(self.latest),
            "act_angular_bias_mean": sum(self.latest.values()) / len(self.latest),
        }


def run_records(trainer: L.Trainer) -> dict:
    """What :class:`binexp.lit.callbacks.RunRecord` adds to every ``metrics.json`` write: the
    ``run_record()`` of every callback that has one, each layer's ``final_values()`` as
    ``{key: {layer: value}}`` (RBNN: ``alpha_final``), and ``angular_bias_final`` (weights,
    per layer) with its mean over layers."""
    out: dict = {}
    callbacks: list[Callback] = getattr(trainer, "callbacks", [])  # set by Lightning's callback connector
    for cb in callbacks:
        hook = getattr(cb, "run_record", None)
        if callable(hook):
            out.update(hook())
    module = trainer.lightning_module
    net = getattr(module, "net", None)
    if net is None:
        return out
    layers = [(name.removeprefix("net."), layer) for name, layer in quantized_layers(net)]
    if not layers:
        return out
    with torch.no_grad():
        bias = torch.stack([angular_bias(layer.latent_weight()) for _, layer in layers]).tolist()
    out["angular_bias_final"] = {name: b for (name, _), b in zip(layers, bias)}
    out["angular_bias_final_mean"] = sum(bias) / len(bias)
    for name, layer in layers:
        for key, value in layer.final_values().items():
            out.setdefault(key, {})[name] = value
    return out


__all__ = ["ActivationDiagnostics", "measure_act_angular_bias", "run_records"]
