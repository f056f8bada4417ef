"""LeNet-5 as FleXOR's MNIST experiment uses it (arXiv:2009.04690, Sec. 3 / Fig. 4):
32C5-MP2-64C5-MP2-512FC-10, every layer binarizable, first and last included."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from binexp.models.registry import ModelConfig, register_model


class LeNet5(nn.Module):
    """conv 5x5 1->32 ('same' padding) -> +bias -> ReLU -> max-pool 2; conv 5x5 32->64 -> +bias
    -> ReLU -> max-pool 2 (28 -> 14 -> 7); FC 64*7*7 -> 512 -> +bias -> ReLU; FC 512 -> 10 -> +bias.

    All four layers come from the quantizer's factory: the FCs as convolutions whose kernel covers
    the whole input map (7x7 for FC1, 1x1 for FC2), so every method binarizes them like any conv
    (FleXOR chunks their weights the same way). No BatchNorm; each layer has a full-precision bias
    (the factory's convs have none). Colour inputs (the synthetic smoke set) are averaged to one
    channel, and maps other than 7x7 before FC1 are max-pooled to 7x7, so the network runs on any
    image size. Init: Kaiming-normal (fan-in) latent weights, zero biases."""

    def __init__(self, conv, num_classes: int) -> None:
        super().__init__()
        self.conv1 = conv(1, 32, 5, 1, 2, stage=0)
        self.conv2 = conv(32, 64, 5, 1, 2, stage=1)
        self.fc1 = conv(64, 512, 7, 1, 0, stage=2)
        self.fc2 = conv(512, num_classes, 1, 1, 0, stage=3)
        self.biases = nn.ParameterList([nn.Parameter(torch.zeros(c)) for c in (32, 64, 512, num_classes)])
        for m in (self.conv1, self.conv2, self.fc1, self.fc2):
            fan_in = m.in_channels * m.kernel_size[0] * m.kernel_size[1]
            init = lambda w, std=math.sqrt(2.0 / fan_in): nn.init.normal_(w, 0.0, std)  # noqa: E731
            init(m.weight) if isinstance(m, nn.Conv2d) else m.reset_latent_weight(init)

    @staticmethod
    def _bias(x: Tensor, b: Tensor) -> Tensor:
        return x + b.view(1, -1, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[1] != 1:
            x = x.mean(1, keepdim=True)
        out = F.max_pool2d(F.relu(self._bias(self.conv1(x), self.biases[0])), 2)
        out = F.max_pool2d(F.relu(self._bias(self.conv2(out), self.biases[1])), 2)
        if out.shape[-2:] != (7, 7):
            out = F.adaptive_max_pool2d(out, 7)
        out = F.relu(self._bias(self.fc1(out), self.biases[2]))
        return self._bias(self.fc2(out), self.biases[3]).flatten(1)


@register_model("lenet5", "LeNet-5 32C5-MP2-64C5-MP2-512FC-10 (FleXOR's MNIST net: every layer binarizable, no BN)",
                input_size=28)
def lenet5(cfg: ModelConfig, conv, num_classes: int) -> nn.Module:
    return LeNet5(conv, num_classes)


__all__ = ["LeNet5"]
