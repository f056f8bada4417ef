"""Name -> architecture registry. A model is a builder ``build(cfg: ModelConfig, conv,
num_classes) -> nn.Module`` registered with :func:`register_model`; it asks ``conv`` (a
:class:`binexp.quant.ConvFactory`) for every binarizable convolution, takes its activation from
``get_act_layer(cfg.act)`` and scales every channel count with :func:`scaled` (``cfg.width``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields

import torch
from torch import nn

from binexp.models.activations import activation_names, get_act_layer

BINARY_INITS = ("model", "uniform_1e-3")
ATTN_BINARIZE = ("none", "bibert", "bit")
# fields only one architecture reads: setting them for another model is refused
MODEL_ONLY = {
    "vit_cifar": ("depth", "dim", "heads", "mlp_ratio", "patch_size", "attn_binarize"),
    "reactnet_a": ("stem_stride",),
}


@dataclass
class ModelConfig:
    """Architecture options. ``bn_gamma_init`` None keeps each model's official init
    (1e-8 for the RBNN ResNet-20 variants and ImageNet ResNets, 1 elsewhere)."""

    name: str = "resnet20"
    bn_gamma_init: float | None = None
    # ImageNet ResNets: the full-precision downsample shortcut. "conv" = 1x1 stride-2 conv + BN
    # (official RBNN code); "avgpool_conv" = AvgPool 2x2 -> 1x1 conv -> BN (Bi-Real Net).
    downsample: str = "conv"
    # lenet5 only: also ask the quantizer for the first conv and the classifier (FleXOR's MNIST net)
    binarize_first_last: bool = False
    # Width multiplier: every channel count c becomes max(1, round(width * c)) (halves round up);
    # the input's 3 channels and the classes stay.
    width: float = 1.0
    # The activation between layers: hardtanh | relu | prelu | tanh | identity | rprelu | maxout | gelu
    # (`binexp list activation`);
    # hardtanh as in the official code (lenet5 keeps its ReLU, as in the paper).
    act: str = "hardtanh"
    # The latent weights of the binarized layers: "model" keeps the architecture's init;
    # "uniform_1e-3" starts them from U[0, 0.001) (torch.rand * 0.001), as the official ReActNet and
    # Bi-Real PyTorch codes and BiBench's non-Conv2d operators do (matters for runs from scratch)
    binary_init: str = "model"
    # CIFAR ResNet-20/32 (resnet20, resnet32, resnet20_bireal): the parameter-free downsampling
    # shortcut. "option_a" = stride-2 subsampling + zero channel padding (RBNN code); "avgpool_pad" =
    # 2x2 average pool + the same padding (ReCU's official ResNet-20)
    shortcut: str = "option_a"
    # vit_cifar only (DeiT-Tiny widths by default): transformer blocks, token width, attention heads
    # (dim divisible by heads), MLP hidden size = mlp_ratio * dim, patch side in pixels
    depth: int = 12
    dim: int = 192
    heads: int = 3
    mlp_ratio: float = 4.0
    patch_size: int = 4
    # vit_cifar only, the attention probabilities: none (softmax in full precision, as BiBench's BERT,
    # BiT and BiViT keep q k^T) | bibert (sign(q), sign(k), sign(v); probabilities 1{q_b k_b^T >= 0}, no
    # softmax) | bit (BiT: elastic binarizers on q, k, v and on the softmax probabilities)
    attn_binarize: str = "none"
    # reactnet_a only: stride of the full-precision 3x3 stem conv (2: official and BiBench; 1: a CIFAR variant)
    stem_stride: int = 2

    def __post_init__(self) -> None:
        if self.shortcut not in ("option_a", "avgpool_pad"):
            raise ValueError(f"model.shortcut={self.shortcut!r}; choose option_a or avgpool_pad")
        if self.shortcut != "option_a" and self.name not in ("resnet20", "resnet32", "resnet20_bireal"):
            raise ValueError(
                f"model.shortcut={self.shortcut} is an option of resnet20, resnet32 and resnet20_bireal, "
                f"not {self.name}; fix: drop it"
            )
        if self.binary_init not in BINARY_INITS:
            raise ValueError(f"model.binary_init={self.binary_init!r}; choose one of: {', '.join(BINARY_INITS)}")
        if self.name not in MODELS:
            raise ValueError(
                f"model.name={self.name!r} is not a known model; choose one of: {', '.join(model_names())}"
            )
        if self.downsample not in ("conv", "avgpool_conv"):
            raise ValueError(f"model.downsample={self.downsample!r}; choose conv or avgpool_conv")
        if self.binarize_first_last and self.name != "lenet5":
            raise ValueError(
                f"model.binarize_first_last=true is only supported by lenet5, not {self.name}; fix: drop it"
            )
        if self.bn_gamma_init is not None and self.bn_gamma_init < 0:
            raise ValueError(f"model.bn_gamma_init must be >= 0, got {self.bn_gamma_init}")
        defaults = {f.name: f.default for f in fields(ModelConfig)}
        for model, keys in MODEL_ONLY.items():
            changed = [f"model.{k}" for k in keys if getattr(self, k) != defaults[k]]
            if changed and self.name != model:
                raise ValueError(f"{', '.join(changed)} only apply to model={model}, not {self.name}; fix: drop them")
        if self.attn_binarize not in ATTN_BINARIZE:
            raise ValueError(f"model.attn_binarize={self.attn_binarize!r}; choose one of: {', '.join(ATTN_BINARIZE)}")
        for key in ("depth", "dim", "heads", "patch_size", "stem_stride"):
            if getattr(self, key) < 1:
                raise ValueError(f"model.{key} must be >= 1, got {getattr(self, key)}")
        if not self.mlp_ratio > 0:
            raise ValueError(f"model.mlp_ratio must be > 0, got {self.mlp_ratio}")
        if not self.width > 0:
            raise ValueError(f"model.width must be > 0, got {self.width}")
        if self.act not in activation_names():
            raise ValueError(
                f"model.act={self.act!r} is not a known activation; choose one of: {', '.join(activation_names())}"
            )

    def act_layer(self) -> Callable[[int], nn.Module]:
        return get_act_layer(self.act)


def scaled(channels: int, width: float) -> int:
    """max(1, round(width * channels)), halves rounded up."""
    return max(1, int(channels * width + 0.5))


@dataclass(frozen=True)
class ModelEntry:
    name: str
    build: Callable[..., nn.Module]
    summary: str
    input_size: int = 32  # the image size the architecture is built for


MODELS: dict[str, ModelEntry] = {}


def register_model(name: str, summary: str, input_size: int = 32):
    """Decorator: register ``build(cfg: ModelConfig, conv, num_classes) -> nn.Module``."""

    def deco(build):
        if name in MODELS:
            raise ValueError(f"model {name!r} registered twice")
        MODELS[name] = ModelEntry(name, build, summary, input_size)
        return build

    return deco


def model_names() -> list[str]:
    return sorted(MODELS)


def build_model(cfg: ModelConfig, conv, num_classes: int) -> nn.Module:
    """``conv`` is a :class:`binexp.quant.ConvFactory` (or any callable with its signature)."""
    model = MODELS[cfg.name].build(cfg, conv, num_classes)
    if cfg.binary_init == "uniform_1e-3":
        from binexp.quant.layers import quantized_layers

        for _, layer in quantized_layers(model):
            layer.reset_latent_weight(_uniform_1e3)
    return model


def _uniform_1e3(weight: nn.Parameter) -> None:
    with torch.no_grad():
        weight.copy_(torch.rand_like(weight) * 1e-3)
