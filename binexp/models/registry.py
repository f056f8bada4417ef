"""Name -> architecture registry."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

from torch import nn


@dataclass
class ModelConfig:
    """Architecture options. ``bn_gamma_init`` None keeps each model's official init
    (1e-8 for the RBNN ResNet-20 variants and ImageNet ResNets, 1 elsewhere)."""

    name: str = "resnet20"
    bn_gamma_init: Optional[float] = None
    # ImageNet ResNets: the full-precision downsample shortcut. "conv" = 1x1 stride-2 conv + BN
    # (official RBNN code); "avgpool_conv" = AvgPool 2x2 -> 1x1 conv -> BN (Bi-Real Net).
    downsample: str = "conv"
    # lenet5 only: also ask the quantizer for the first conv and the classifier (FleXOR's MNIST net)
    binarize_first_last: bool = False

    def __post_init__(self) -> None:
        if self.name not in MODELS:
            raise ValueError(f"model.name={self.name!r} is not a known model; choose one of: {', '.join(model_names())}")
        if self.downsample not in ("conv", "avgpool_conv"):
            raise ValueError(f"model.downsample={self.downsample!r}; choose conv or avgpool_conv")
        if self.binarize_first_last and self.name != "lenet5":
            raise ValueError(f"model.binarize_first_last=true is only supported by lenet5, not {self.name}; fix: drop it")
        if self.bn_gamma_init is not None and self.bn_gamma_init < 0:
            raise ValueError(f"model.bn_gamma_init must be >= 0, got {self.bn_gamma_init}")


@dataclass(frozen=True)
class ModelEntry:
    name: str
    build: Callable[..., nn.Module]
    summary: str
    input_size: int = 32  # the image size the architecture is built for


MODELS: dict[str, ModelEntry] = {}


def register_model(name: str, summary: str, input_size: int = 32):
    def deco(build):
        MODELS[name] = ModelEntry(name, build, summary, input_size)
        return build

    return deco


def model_names() -> list[str]:
    return sorted(MODELS)


def build_model(cfg: ModelConfig, conv, num_classes: int) -> nn.Module:
    """``conv`` is a :class:`binexp.quant.ConvFactory` (or any callable with its signature)."""
    return MODELS[cfg.name].build(cfg, conv, num_classes)
