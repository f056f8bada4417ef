"""Per-layer diagnostics of binarized weights (what TensorBoard shows, and the tests check).

For one output channel w in R^n and b = sign(w):
* angular bias (RBNN Sec. 3.1, arXiv 2009.13055): the angle between w and b, in degrees,
  arccos cos(w, b) with cos(w, b) = ||w||_1 / (||w||_2 sqrt(n)) (:func:`sign_cosine`); 0 = w on a
  binary vertex, higher = more bias, 37.0 for Gaussian w (whose cosine is sqrt(2/pi) ~ 0.798);
  the mean over output channels;
* quantization error at the best per-channel scale alpha = mean|w|: ||alpha b - w||^2 / ||w||^2
  (= sin^2 of the angle, 1 - 2/pi ~ 0.363 for Gaussian w), summed over channels;
* unscaled quantization error ||sign(w) - w||^2 / ||w||^2 (no scale: what a histogram of w
  against +-1 shows, RBNN Fig. 5, as opposed to the optimal-scale error of Fig. 2(b));
* flip rate: share of signs that changed since the previous measurement;
* activation angular bias: mean over samples of the angle(a_i, sign(a_i)) in degrees of the
  tensor a layer binarizes, each sample flattened (RBNN reviewer 1's question on activations).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from binexp.quant.sign import quantization_error, sign_pm1  # quantization_error: re-exported


@torch.no_grad()
def sign_cosine(x: Tensor) -> Tensor:
    """cos(x_r, sign(x_r)) = ||x_r||_1 / (||x_r||_2 sqrt(n)) of each row of ``x`` (rows, ...), as (rows,)."""
    x = x.detach().double().flatten(1)
    return (x.abs().sum(1) / (x.norm(dim=1) * math.sqrt(x.shape[1])).clamp_min(1e-12)).clamp(-1.0, 1.0)


def _degrees(cos: Tensor) -> Tensor:
    return torch.rad2deg(torch.arccos(cos)).mean().float()


@torch.no_grad()
def angular_bias(w: Tensor) -> Tensor:
    """Mean over output channels of the angle(w_c, sign(w_c)) in degrees; ``w`` is (C_out, ...)."""
    return _degrees(sign_cosine(w))


@torch.no_grad()
def quantization_error_unscaled(w: Tensor) -> Tensor:
    """||sign(w) - w||^2 / ||w||^2 summed over output channels (no scale), ``w`` (C_out, ...)."""
    w = w.detach().float().flatten(1)
    return ((sign_pm1(w) - w) ** 2).sum() / (w**2).sum().clamp_min(1e-12)


@torch.no_grad()
def activation_angular_bias(a: Tensor) -> Tensor:
    """Mean over samples of the angle(a_i, sign(a_i)) in degrees, ``a`` (N, ...)."""
    return _degrees(sign_cosine(a))


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
    "sign_cosine",
    "sign_pm1",
    "weight_signs",
]
