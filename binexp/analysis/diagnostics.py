"""Per-layer diagnostics of binarized weights (what TensorBoard shows, and the tests check).

For one output channel w in R^n and b = sign(w):
* angular bias: cos(w, b) = ||w||_1 / (||w||_2 sqrt(n)); -> sqrt(2/pi) ~ 0.798 for Gaussian w;
* quantization error at the best per-channel scale alpha = mean|w|: ||alpha b - w||^2 / ||w||^2
  (= sin^2 of the angle, 1 - 2/pi ~ 0.363 for Gaussian w), summed over channels;
* unscaled quantization error ||sign(w) - w||^2 / ||w||^2 (no scale: what a histogram of w
  against +-1 shows, RBNN Fig. 5, as opposed to the optimal-scale error of Fig. 2(b));
* flip rate: share of signs that changed since the previous measurement;
* activation angular bias: mean over samples of cos(a_i, sign(a_i)) of the tensor a layer
  binarizes, each sample flattened (RBNN reviewer 1's question on activations).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from binexp.quant.sign import quantization_error, sign_pm1  # quantization_error: re-exported


@torch.no_grad()
def angular_bias(w: Tensor) -> Tensor:
    """Mean over output channels of cos(w_c, sign(w_c)); ``w`` is (C_out, ...)."""
    w = w.detach().float().flatten(1)
    n = w.shape[1]
    return (w.abs().sum(1) / (w.norm(dim=1) * math.sqrt(n)).clamp_min(1e-12)).mean()


@torch.no_grad()
def quantization_error_unscaled(w: Tensor) -> Tensor:
    """||sign(w) - w||^2 / ||w||^2 summed over output channels (no scale), ``w`` (C_out, ...)."""
    w = w.detach().float().flatten(1)
    return ((sign_pm1(w) - w) ** 2).sum() / (w**2).sum().clamp_min(1e-12)


@torch.no_grad()
def activation_angular_bias(a: Tensor) -> Tensor:
    """Mean over samples of cos(a_i, sign(a_i)) = ||a_i||_1 / (||a_i||_2 sqrt(n)), ``a`` (N, ...)."""
    a = a.detach().float().flatten(1)
    n = a.shape[1]
    return (a.abs().sum(1) / (a.norm(dim=1) * math.sqrt(n)).clamp_min(1e-12)).mean()


@torch.no_grad()
def flip_rate(signs: Tensor, previous: Tensor) -> Tensor:
    """Share of entries whose sign differs between two {-1,+1} (or bool) tensors."""
    return (signs.flatten() != previous.flatten()).float().mean()


@torch.no_grad()
def layer_stats(layer) -> dict[str, Tensor]:
    """The common statistics of one :class:`~binexp.quant.layers.QuantConv2d`."""
    w = layer.latent_weight()
    stats = {
        "angular_bias": angular_bias(w),
        "quant_error": quantization_error(w),
        "quant_error_unscaled": quantization_error_unscaled(w),
    }
    stats.update({k: torch.as_tensor(v).float() for k, v in layer.extra_stats().items()})
    return stats


@torch.no_grad()
def weight_signs(layer) -> Tensor:
    """Binary weight as a compact bool tensor (True = +1) on the CPU, for flip rates."""
    return (layer.weight_signs().detach() > 0).cpu()


__all__ = [
    "activation_angular_bias",
    "angular_bias",
    "flip_rate",
    "layer_stats",
    "quantization_error",
    "quantization_error_unscaled",
    "sign_pm1",
    "weight_signs",
]
