"""The activation factory: ``model.act`` names the activation every architecture puts between
its layers (timm's ``act_layer``).

An entry is ``make(channels) -> nn.Module``, called once per use, so an activation with
parameters gets its own per layer and may be per channel (PReLU, ReActNet's RPReLU, AdaBin's
Maxout). The default, ``hardtanh``, is what the official RBNN and Bi-Real code use. Per-channel
parameters act on dim 1 of a 4-D (N, C, H, W) feature map and on the last dim otherwise ((N, C)
features, (N, tokens, C) transformer tokens)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn


def _per_channel(p: Tensor, x: Tensor) -> Tensor:
    """A (C,) parameter shaped to broadcast over ``x``'s channels (dim 1 of 4-D, else the last dim)."""
    return p.view(1, -1, 1, 1) if x.dim() == 4 else p


class RPReLU(nn.Module):
    """ReActNet's RPReLU (Liu et al., ECCV 2020, arXiv 2003.03488, Eq. 3), per channel c:
    f(x) = x - gamma_c + zeta_c for x > gamma_c, beta_c (x - gamma_c) + zeta_c otherwise,
    written as the official code does (liuzechun/ReActNet ``mobilenet/2_step2/reactnet.py``:
    ``LearnableBias`` -> ``nn.PReLU`` -> ``LearnableBias``): y = PReLU_beta(x + b_in) + b_out with
    b_in = -gamma, b_out = zeta, both initialised to 0, and beta to 0.25 (``nn.PReLU``'s init)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.bias_in = nn.Parameter(torch.zeros(channels))
        self.slope = nn.Parameter(torch.full((channels,), 0.25))
        self.bias_out = nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor) -> Tensor:
        x = x + _per_channel(self.bias_in, x)
        return torch.where(x > 0, x, _per_channel(self.slope, x) * x) + _per_channel(self.bias_out, x)


class Maxout(nn.Module):
    """AdaBin's Maxout (Tu et al., ECCV 2022, arXiv 2208.08084; code huawei-noah/Efficient-Computing
    ``BinaryNetworks/AdaBin/cifar10/utils/binarylib.py``), per channel c:
    y = p_c relu(x) - n_c relu(-x), p initialised to 1, n to 0.25."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.pos = nn.Parameter(torch.ones(channels))
        self.neg = nn.Parameter(torch.full((channels,), 0.25))

    def forward(self, x: Tensor) -> Tensor:
        return _per_channel(self.pos, x) * torch.relu(x) - _per_channel(self.neg, x) * torch.relu(-x)


ActLayer = Callable[[int], nn.Module]

ACTIVATIONS: dict[str, ActLayer] = {
    "hardtanh": lambda channels: nn.Hardtanh(),
    "relu": lambda channels: nn.ReLU(),
    "prelu": lambda channels: nn.PReLU(channels),  # one slope per channel, initialised to 0.25
    "tanh": lambda channels: nn.Tanh(),
    "identity": lambda channels: nn.Identity(),
    "rprelu": RPReLU,  # ReActNet (per channel: shift in, PReLU slope, shift out)
    "maxout": Maxout,  # AdaBin (per channel: positive and negative slopes)
    "gelu": lambda channels: nn.GELU(),  # exact (erf) GELU, the ViT/DeiT MLP activation
}


def register_activation(name: str, make: ActLayer) -> None:
    """Add ``make(channels) -> nn.Module`` as ``model.act=<name>``."""
    if name in ACTIVATIONS:
        raise ValueError(f"activation {name!r} registered twice")
    ACTIVATIONS[name] = make


def activation_names() -> list[str]:
    return sorted(ACTIVATIONS)


def get_act_layer(name: str) -> ActLayer:
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise KeyError(f"unknown activation {name!r}; choose one of: {', '.join(activation_names())}") from None
