"""Architectures: a registry of builders that ask a quantizer for each binarizable conv."""

from binexp.models import lenet, resnet_cifar, resnet_imagenet, vgg_small  # noqa: F401  (registers models)
from binexp.models.registry import MODELS, ModelConfig, build_model, model_names, register_model

__all__ = ["MODELS", "ModelConfig", "build_model", "model_names", "register_model"]
