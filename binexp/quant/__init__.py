"""Quantizers: sign surrogates, the quantized-layer interface and one module per method.

Every module in this package is imported here, so a new method registers itself by existing
(its own file + its YAML in conf/quantizer/); nothing else needs editing."""

import importlib
import pkgutil

from binexp.quant.layers import ConvSpec, LinearSpec, QuantConv2d, QuantLayer, QuantLinear, Storage, quantized_layers
from binexp.quant.registry import (
    QUANTIZERS,
    ConvFactory,
    get_quantizer,
    linear_quantizer_names,
    quantizer_names,
    register_linear,
    register_quantizer,
)

for _info in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_info.name}")

__all__ = [
    "ConvFactory",
    "ConvSpec",
    "LinearSpec",
    "QUANTIZERS",
    "QuantConv2d",
    "QuantLayer",
    "QuantLinear",
    "Storage",
    "get_quantizer",
    "linear_quantizer_names",
    "quantized_layers",
    "quantizer_names",
    "register_linear",
    "register_quantizer",
]
