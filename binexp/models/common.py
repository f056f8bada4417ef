"""Pieces shared by the architectures: option-A shortcut and the init rules of the RBNN code."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from binexp.quant.layers import QuantLayer


class OptionAShortcut(nn.Module):
    """Parameter-free shortcut (He et al. 2016, option A): stride-2 subsampling and zero
    padding of the new channels, split evenly on both sides as in the RBNN code. ``avgpool``:
    a stride x stride average pool instead of the subsampling (ReCU's and Bi-Real's CIFAR code:
    ``nn.AvgPool2d((2, 2))`` then the same zero padding)."""

    def __init__(self, in_planes: int, planes: int, stride: int, avgpool: bool = False) -> None:
        super().__init__()
        self.stride = stride
        self.avgpool = avgpool
        self.pad = (planes - in_planes) // 2
        self.extra = planes - in_planes - self.pad

    def forward(self, x: Tensor) -> Tensor:
        if self.stride != 1:
            x = F.avg_pool2d(x, self.stride) if self.avgpool else x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, self.pad, self.extra))


def init_kaiming(model: nn.Module, bn_gamma: float) -> None:
    """Kaiming-normal for every conv (latent binary weights included) and linear layer;
    BatchNorm2d weight = ``bn_gamma``, bias 0 (the RBNN code sets 1e-8 for ResNet-20 and the
    ImageNet ResNets); BatchNorm1d keeps PyTorch's default."""
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight)
        elif isinstance(m, QuantLayer):
            m.reset_latent_weight(nn.init.kaiming_normal_)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.constant_(m.weight, bn_gamma)
            nn.init.zeros_(m.bias)
