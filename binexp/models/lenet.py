"""LeNet-5 as FleXOR's MNIST experiment uses it (arXiv:2009.04690, Sec. 3 / Fig. 4):
32C5-MP2-64C5-MP2-512FC-10."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from binexp.models.registry import ModelConfig, register_model, scaled


class LeNet5(nn.Module):
    """conv 5x5 1->32 ('same' padding) -> ReLU -> max-pool 2; conv 5x5 32->64 -> ReLU -> max-pool 2
    (28 -> 14 -> 7); FC 64*7*7 -> 512 -> ReLU; FC 512 -> classes; every layer with a bias.

    The middle conv and FC1 come from the quantizer's factory (FC1 as a convolution whose 7x7
    kernel covers the whole map, so every method binarizes it like any conv and FleXOR chunks it
    the same way). The first conv and the classifier are full precision (nn.Conv2d / nn.Linear
    with biases) unless ``binarize_first_last``: then they come from the factory too (the
    classifier as a 1x1 conv), every layer binarized as in FleXOR's Fig. 4. No BatchNorm; every
    factory layer gets a full-precision bias (the factory's convs have none). Colour inputs (the
    synthetic smoke set) are averaged to one channel and maps other than 7x7 before FC1 are
    max-pooled to 7x7, so the network runs on any image size. Init: Kaiming-normal (fan-in).
    ``model.width`` scales the 32/64/512 channels; the activation stays ReLU, as in the paper."""

    def __init__(self, conv, num_classes: int, binarize_first_last: bool = False, width: float = 1.0) -> None:
        super().__init__()
        c1, c2, f1 = (scaled(c, width) for c in (32, 64, 512))
        self.conv1 = conv(1, c1, 5, 1, 2, stage=0) if binarize_first_last else nn.Conv2d(1, c1, 5, 1, 2, bias=True)
        self.conv2 = conv(c1, c2, 5, 1, 2, stage=1)
        self.fc1 = conv(c2, f1, 7, 1, 0, stage=2)
        self.fc2 = (
            conv(f1, num_classes, 1, 1, 0, stage=3) if binarize_first_last else nn.Linear(f1, num_classes, bias=True)
        )
        # a bias for every layer without one of its own (the factory's layers)
        self.biases = nn.ParameterDict(
            {
                name: nn.Parameter(torch.zeros(c))
                for name, c in (("conv1", c1), ("conv2", c2), ("fc1", f1), ("fc2", num_classes))
                if getattr(self, name).__class__ not in (nn.Conv2d, nn.Linear) or getattr(self, name).bias is None
            }
        )
        for m in (self.conv1, self.conv2, self.fc1, self.fc2):
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / m.in_features))
                nn.init.zeros_(m.bias)
                continue
            std = math.sqrt(2.0 / (m.in_channels * m.kernel_size[0] * m.kernel_size[1]))
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0.0, std)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            else:
                m.reset_latent_weight(lambda w, std=std: nn.init.normal_(w, 0.0, std))

    def _layer(self, name: str, x: Tensor) -> Tensor:
        out = getattr(self, name)(x)
        b = self.biases.get(name)
        return out if b is None else out + b.view(1, -1, *([1] * (out.dim() - 2)))

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[1] != 1:
            x = x.mean(1, keepdim=True)
        out = F.max_pool2d(F.relu(self._layer("conv1", x)), 2)
        out = F.max_pool2d(F.relu(self._layer("conv2", out)), 2)
        if out.shape[-2:] != (7, 7):
            out = F.adaptive_max_pool2d(out, 7)
        out = F.relu(self._layer("fc1", out)).flatten(1)
        if isinstance(self.fc2, nn.Linear):
            return self._layer("fc2", out)
        return self._layer("fc2", out[:, :, None, None]).flatten(1)


@register_model(
    "lenet5",
    "LeNet-5 32C5-MP2-64C5-MP2-512FC-10 (FleXOR's MNIST net; no BN; "
    "model.binarize_first_last=true binarizes every layer as FleXOR does)",
    input_size=28,
)
def lenet5(cfg: ModelConfig, conv, num_classes: int) -> nn.Module:
    return LeNet5(conv, num_classes, cfg.binarize_first_last, cfg.width)


__all__ = ["LeNet5"]
