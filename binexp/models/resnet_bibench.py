"""BiBench's CIFAR ResNet-18/20/34 (Qin et al., "BiBench: Benchmarking and Analyzing Network
Binarization", ICML 2023, arXiv 2301.11233), as its configs build them (htqin/BiBench
``bibench/models/backbones/resnet.py``, ``resnet_cifar.py``, ``configs/_base_/models/resnet{18,20,34}.py``).

Full precision: the stem ``Conv2d(3, 64, 3, 1, 1) -> BN -> Hardtanh`` (64 channels for every
depth: BiBench's ResNet-20 config leaves mmcls' ``stem_channels`` at 64, no max-pool), every
BatchNorm, the down-sampling shortcut ``Conv2d(C_in, C_out, 1, stride) -> BN`` wherever the stride
or the width changes (so ResNet-20's first block has a 64 -> 16 one), and the head (global
average pool -> linear with bias, no BatchNorm1d). Binarized: both 3x3 convs of every
BasicBlock. ``model.act`` (hardtanh, BiBench's) after the first BN and after the addition (one
module per use; BiBench reuses one instance, which is the same function).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from binexp.models.activations import ActLayer
from binexp.models.common import init_kaiming
from binexp.models.registry import ModelConfig, register_model, scaled


class BiBenchBlock(nn.Module):
    """act(BN1(conv1(x))) -> BN2(conv2(.)) + shortcut(x) -> act."""

    def __init__(self, conv, in_planes: int, planes: int, stride: int, stage: int, act_layer: ActLayer) -> None:
        super().__init__()
        self.conv1 = conv(in_planes, planes, 3, stride, 1, stage=stage)
        self.bn1 = nn.BatchNorm2d(planes)
        self.act1 = act_layer(planes)
        self.conv2 = conv(planes, planes, 3, 1, 1, stage=stage)
        self.bn2 = nn.BatchNorm2d(planes)
        self.act2 = act_layer(planes)
        self.downsample: nn.Module = nn.Identity()
        if stride != 1 or in_planes != planes:
            self.downsample = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x: Tensor) -> Tensor:
        out = self.act1(self.bn1(self.conv1(x)))
        return self.act2(self.bn2(self.conv2(out)) + self.downsample(x))


class BiBenchResNet(nn.Module):
    def __init__(
        self,
        conv,
        widths: tuple[int, ...],
        blocks: tuple[int, ...],
        num_classes: int,
        bn_gamma: float,
        width: float,
        act_layer: ActLayer,
    ) -> None:
        super().__init__()
        stem = scaled(64, width)
        self.conv1 = nn.Conv2d(3, stem, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(stem)
        self.act1 = act_layer(stem)
        stages, in_planes = [], stem
        for stage, (planes, n) in enumerate(zip(widths, blocks)):
            planes = scaled(planes, width)
            layer = []
            for i in range(n):
                layer.append(BiBenchBlock(conv, in_planes, planes, 2 if stage > 0 and i == 0 else 1, stage, act_layer))
                in_planes = planes
            stages.append(nn.Sequential(*layer))
        self.layers = nn.Sequential(*stages)
        self.fc = nn.Linear(in_planes, num_classes)
        init_kaiming(self, bn_gamma)

    def forward(self, x: Tensor) -> Tensor:
        out = self.layers(self.act1(self.bn1(self.conv1(x))))
        return self.fc(F.adaptive_avg_pool2d(out, 1).flatten(1))


def _build(cfg: ModelConfig, conv, num_classes: int, widths, blocks) -> nn.Module:
    gamma = 1.0 if cfg.bn_gamma_init is None else cfg.bn_gamma_init
    return BiBenchResNet(conv, widths, blocks, num_classes, gamma, cfg.width, cfg.act_layer())


@register_model(
    "resnet20_bibench", "BiBench CIFAR ResNet-20 (64-channel FP stem, FP 1x1 down-sampling, 18 binary convs)"
)
def resnet20_bibench(cfg: ModelConfig, conv, num_classes: int) -> nn.Module:
    return _build(cfg, conv, num_classes, (16, 32, 64), (3, 3, 3))


@register_model(
    "resnet18_bibench", "BiBench CIFAR ResNet-18 (64-channel FP stem, FP 1x1 down-sampling, 16 binary convs)"
)
def resnet18_bibench(cfg: ModelConfig, conv, num_classes: int) -> nn.Module:
    return _build(cfg, conv, num_classes, (64, 128, 256, 512), (2, 2, 2, 2))


@register_model(
    "resnet34_bibench", "BiBench CIFAR ResNet-34 (64-channel FP stem, FP 1x1 down-sampling, 32 binary convs)"
)
def resnet34_bibench(cfg: ModelConfig, conv, num_classes: int) -> nn.Module:
    return _build(cfg, conv, num_classes, (64, 128, 256, 512), (3, 4, 6, 3))


__all__ = ["BiBenchBlock", "BiBenchResNet"]
