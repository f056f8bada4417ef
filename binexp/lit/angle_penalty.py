"""Penalising the angle instead of rotating (RBNN reviewer 2's question; Lin et al., RBNN,
NeurIPS 2020, arXiv 2009.13055): a loss term that pulls every latent weight towards its binary
vertex, as an alternative to RBNN's rotation.

For one binarized layer with latent weight w (C_out, n) (the real tensor whose sign is the
binary weight: w for XNOR-Net / Bi-Real, the mixed w~ for RBNN, w_s with the rotation off):

    P(layer) = mean_c (1 - cos(w_c, sign w_c)),   cos(w_c, sign w_c) = ||w_c||_1 / (||w_c||_2 sqrt(n))

(the cosine of the angular bias :func:`binexp.analysis.diagnostics.angular_bias` logs in degrees), and the loss adds
``angle_penalty * mean over binarized layers of P``. Its gradient per channel is
dP/dw_c = -(sign(w_c) / ||w_c||_2 - ||w_c||_1 w_c / ||w_c||_2^3) / (C_out sqrt(n)).
Set with the top-level config field ``angle_penalty`` (0 = off)."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from binexp.config import check_angle_penalty  # re-exported: validated with the config
from binexp.errors import BinexpError


def one_minus_cos(w: Tensor) -> Tensor:
    """mean over output channels of 1 - cos(w_c, sign w_c), differentiable; ``w`` (C_out, ...)."""
    w = w.flatten(1)
    cos = w.abs().sum(1) / (w.norm(dim=1) * math.sqrt(w.shape[1])).clamp_min(1e-12)
    return (1.0 - cos).mean()


def angle_penalty(net: nn.Module) -> Tensor:
    """mean over the binarized layers with a latent weight of :func:`one_minus_cos` (unweighted)."""
    from binexp.quant.layers import quantized_layers

    terms = []
    for _, layer in quantized_layers(net):
        w = layer.penalty_weight()
        if w is not None:
            terms.append(one_minus_cos(w.float()))
    if not terms:
        raise BinexpError(
            "angle_penalty > 0 but the model has no binarized layer with a latent weight; fix: set angle_penalty=0"
        )
    return torch.stack(terms).mean()


__all__ = ["angle_penalty", "check_angle_penalty", "one_minus_cos"]
