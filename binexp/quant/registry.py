"""Name -> quantizer registry. A quantizer is a config schema (a dataclass) plus a factory
that builds one binarized convolution; adding one touches its own module, its YAML file in
``conf/quantizer/`` and the import list in ``binexp/quant/__init__.py`` — nothing else."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from torch import nn


@dataclass(frozen=True)
class QuantizerEntry:
    name: str
    schema: type
    build: Callable[..., nn.Module]
    summary: str


QUANTIZERS: dict[str, QuantizerEntry] = {}


def register_quantizer(name: str, schema: type, summary: str = ""):
    """Decorator: register ``build(cfg, in_ch, out_ch, kernel_size, stride, padding, stage)``."""

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


class ConvFactory:
    """Builds the binarizable convolutions of a model from one validated quantizer config.

    ``conv(in_ch, out_ch, kernel_size, stride, padding, stage)``; ``stage`` is the 0-based
    stage of the layer in its network, for methods with per-stage settings (FleXOR Table 2)."""

    def __init__(self, cfg: Any) -> None:
        self.cfg = cfg
        self.entry = get_quantizer(cfg.name)
        self.count = 0

    def __call__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0, stage: int = 0) -> nn.Module:
        layer = self.entry.build(self.cfg, in_channels, out_channels, kernel_size, stride, padding, stage)
        self.count += 1
        return layer
