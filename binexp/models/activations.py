"""The activation factory: ``model.act`` names the activation every architecture puts between
its layers (timm's ``act_layer``).

An entry is ``make(channels) -> nn.Module``, called once per use, so an activation with
parameters gets its own per layer and may be per channel (PReLU here; ReActNet's RPReLU would be
one more entry). The default, ``hardtanh``, is what the official RBNN and Bi-Real code use."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

ActLayer = Callable[[int], nn.Module]

ACTIVATIONS: dict[str, ActLayer] = {
    "hardtanh": lambda channels: nn.Hardtanh(),
    "relu": lambda channels: nn.ReLU(),
    "prelu": lambda channels: nn.PReLU(channels),  # one slope per channel, initialised to 0.25
    "tanh": lambda channels: nn.Tanh(),
    "identity": lambda channels: nn.Identity(),
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
