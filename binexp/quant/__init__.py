"""Quantizers: sign surrogates, the quantized-layer interface and one module per method.

Every module in this package is imported here, so a new method registers itself by existing
(its own file + its YAML in conf/quantizer/); nothing else needs editing."""

import importlib
import pkgutil

from binexp.quant.layers import ConvSpec, QuantConv2d, Storage, quantized_layers
from binexp.quant.registry import QUANTIZERS, ConvFactory, get_quantizer, quantizer_names, register_quantizer

for _info in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_info.name}")

__all__ = [
    "ConvFactory",
    "ConvSpec",
    "QUANTIZERS",
    "QuantConv2d",
    "Storage",
    "get_quantizer",
    "quantized_layers",
    "quantizer_names",
    "register_quantizer",
]
