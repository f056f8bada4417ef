"""Architectures: a registry of builders that ask a quantizer for each binarizable conv.

Every module in this package is imported here, so a new architecture registers itself by
existing (its own file with ``@register_model`` + its YAML in conf/model/); nothing else needs
editing."""

import importlib
import pkgutil

from binexp.models.activations import ACTIVATIONS, activation_names, get_act_layer, register_activation
from binexp.models.registry import MODELS, ModelConfig, build_model, model_names, register_model

for _info in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_info.name}")

__all__ = [
    "ACTIVATIONS",
    "MODELS",
    "ModelConfig",
    "activation_names",
    "build_model",
    "get_act_layer",
    "model_names",
    "register_activation",
    "register_model",
]
