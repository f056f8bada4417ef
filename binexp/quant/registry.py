"""Name -> quantizer registry. A quantizer is a config schema (a dataclass) plus a builder
``build(cfg, spec: ConvSpec) -> nn.Module`` for one binarizable convolution, registered with
:func:`register_quantizer`, and optionally a *linear rule* ``build_linear(cfg, spec: LinearSpec)
-> nn.Module`` for one binarizable linear layer, registered with :func:`register_linear` (a
quantizer without one cannot build a model with binarized linear layers, e.g. ``vit_cifar``, and
says so in one line). Adding one touches its own module in ``binexp/quant/`` (imported by the
package's ``__init__``, which imports every module it finds there) and its YAML file in
``conf/quantizer/`` — nothing else."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from torch import nn

from binexp.errors import BinexpError
from binexp.quant.layers import ConvSpec, LinearSpec


@dataclass(frozen=True)
class QuantizerEntry:
    name: str
    schema: type
    build: Callable[..., nn.Module]
    summary: str
    build_linear: Callable[..., nn.Module] | None = None  # the linear rule; None: convolutions only


QUANTIZERS: dict[str, QuantizerEntry] = {}


def register_quantizer(name: str, schema: type, summary: str = ""):
    """Decorator: register ``build(cfg, spec: ConvSpec) -> nn.Module`` under ``name`` with its
    config ``schema`` (a dataclass whose ``name`` field defaults to ``name``)."""

    def deco(build):
        if name in QUANTIZERS:
            raise ValueError(f"quantizer {name!r} registered twice")
        QUANTIZERS[name] = QuantizerEntry(name, schema, build, summary or (build.__doc__ or "").strip().split("\n")[0])
        return build

    return deco


def register_linear(name: str):
    """Decorator: register ``build_linear(cfg, spec: LinearSpec) -> nn.Module`` as the linear rule
    of the already registered quantizer ``name`` (put it below the conv builder in the method's
    module)."""

    def deco(build_linear):
        if name not in QUANTIZERS:
            raise ValueError(f"register the quantizer {name!r} before its linear rule")
        if QUANTIZERS[name].build_linear is not None:
            raise ValueError(f"quantizer {name!r} has two linear rules")
        QUANTIZERS[name] = replace(QUANTIZERS[name], build_linear=build_linear)
        return build_linear

    return deco


def linear_quantizer_names() -> list[str]:
    """The quantizers with a linear rule (those that can binarize ``nn.Linear``)."""
    return sorted(n for n, e in QUANTIZERS.items() if e.build_linear is not None)


def quantizer_names() -> list[str]:
    return sorted(QUANTIZERS)


def get_quantizer(name: str) -> QuantizerEntry:
    try:
        return QUANTIZERS[name]
    except KeyError:
        raise KeyError(f"unknown quantizer {name!r}; choose one of: {', '.join(quantizer_names())}") from None


def check_choice(key: str, value: object, choices) -> None:
    """A quantizer schema's choice field: ``ValueError`` naming the field, the value and the choices."""
    if value not in choices:
        from binexp.suggest import did_you_mean

        hint = did_you_mean(str(value), choices, f"quantizer.{key}=")
        raise ValueError(f"quantizer.{key}={value!r} is not valid{hint}; choose one of: {', '.join(choices)}")


class ConvFactory:
    """Builds the binarizable layers of one network from one validated quantizer config.

    A model calls ``conv(in_ch, out_ch, kernel_size, stride, padding, stage=...)`` for each
    binarizable convolution and ``conv.linear(in_features, out_features, bias=..., role=...,
    stage=...)`` for each binarizable linear layer; the factory numbers them in call order (one
    index space for both) and passes the method's conv builder a :class:`ConvSpec`, its linear
    rule a :class:`LinearSpec`. ``specs`` lists what was built. Use one factory per network."""

    def __init__(self, cfg: Any) -> None:
        self.cfg = cfg
        self.entry = get_quantizer(cfg.name)
        self.specs: list[ConvSpec | LinearSpec] = []

    def __call__(
        self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0, stage: int = 0
    ) -> nn.Module:
        spec = ConvSpec(in_channels, out_channels, kernel_size, stride, padding, stage, index=len(self.specs))
        self.specs.append(spec)
        return self.entry.build(self.cfg, spec)

    def linear(
        self, in_features: int, out_features: int, bias: bool = True, role: str = "mlp", stage: int = 0
    ) -> nn.Module:
        """A binarizable linear layer ``(..., in_features) -> (..., out_features)`` from the
        quantizer's linear rule; a quantizer without one is refused in one line."""
        if self.entry.build_linear is None:
            raise BinexpError(
                f"quantizer {self.entry.name} has no linear rule, and this model binarizes linear layers; "
                f"fix: quantizer=<one of: {', '.join(linear_quantizer_names())}>, or a convolution-only model"
            )
        spec = LinearSpec(in_features, out_features, bias, role, stage, index=len(self.specs))
        self.specs.append(spec)
        return self.entry.build_linear(self.cfg, spec)
