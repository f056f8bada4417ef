"""Name -> quantizer registry. A quantizer is a config schema (a dataclass) plus a builder
``build(cfg, spec: ConvSpec) -> nn.Module`` for one binarizable convolution, registered with
:func:`register_quantizer`. Adding one touches its own module in ``binexp/quant/`` (imported by
the package's ``__init__``, which imports every module it finds there) and its YAML file in
``conf/quantizer/`` — nothing else."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from binexp.quant.layers import ConvSpec


@dataclass(frozen=True)
class QuantizerEntry:
    name: str
    schema: type
    build: Callable[..., nn.Module]
    summary: str


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
        raise ValueError(f"quantizer.{key}={value!r} is not valid; choose one of: {', '.join(choices)}")


class ConvFactory:
    """Builds the binarizable convolutions of one network from one validated quantizer config.

    A model calls ``conv(in_ch, out_ch, kernel_size, stride, padding, stage=...)`` for each
    binarizable convolution; the factory numbers them in call order and passes the method's
    builder a :class:`ConvSpec`. ``specs`` lists what was built. Use one factory per network."""

    def __init__(self, cfg: Any) -> None:
        self.cfg = cfg
        self.entry = get_quantizer(cfg.name)
        self.specs: list[ConvSpec] = []

    def __call__(
        self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0, stage: int = 0
    ) -> nn.Module:
        spec = ConvSpec(in_channels, out_channels, kernel_size, stride, padding, stage, index=len(self.specs))
        self.specs.append(spec)
        return self.entry.build(self.cfg, spec)
