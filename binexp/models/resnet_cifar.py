"""CIFAR ResNets as the official RBNN code builds them (lmbxmu/RBNN,
``cifar/models_cifar/resnet.py``, ``resnet_bireal.py``, ``resnet2.py``).

First conv and classifier full precision, Hardtanh everywhere (``model.act``), option-A
shortcuts for ResNet-20/32, BatchNorm1d before the classifier. Every channel count is scaled by
``model.width``."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from binexp.models.activations import ActLayer, get_act_layer
from binexp.models.common import OptionAShortcut, init_kaiming
from binexp.models.registry import ModelConfig, register_model, scaled

HARDTANH = get_act_layer("hardtanh")


class BasicBlock(nn.Module):
    """conv -> BN -> Hardtanh -> conv -> BN -> (+ shortcut) -> Hardtanh."""

    def __init__(
        self,
        conv,
        in_planes: int,
        planes: int,
        stride: int,
        stage: int,
        shortcut: nn.Module,
        act_layer: ActLayer = HARDTANH,
    ) -> None:
        super().__init__()
        self.conv1 = conv(in_planes, planes, 3, stride, 1, stage=stage)
        self.bn1 = nn.BatchNorm2d(planes)
        self.act1 = act_layer(planes)
        self.conv2 = conv(planes, planes, 3, 1, 1, stage=stage)
        self.bn2 = nn.BatchNorm2d(planes)
        self.act2 = act_layer(planes)
        self.shortcut = shortcut

    def forward(self, x: Tensor) -> Tensor:
        out = self.act1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out)) + self.shortcut(x)
        return self.act2(out)


class BiRealBlock(BasicBlock):
    """Bi-Real-style: the same layers, but every binary conv has its own shortcut.
    out1 = Hardtanh(BN(conv(x)) + shortcut(x)); out2 = Hardtanh(BN(conv(out1)) + out1)."""

    def forward(self, x: Tensor) -> Tensor:
        out = self.act1(self.bn1(self.conv1(x)) + self.shortcut(x))
        return self.act2(self.bn2(self.conv2(out)) + out)


class CifarResNet(nn.Module):
    """ResNet-20/32 (16/32/64 widths, 3 stages of n blocks): FP stem conv 3->16 -> BN ->
    Hardtanh; blocks; global average pool -> BatchNorm1d(64) -> FP linear."""

    def __init__(
        self,
        conv,
        block: type,
        blocks_per_stage: int,
        num_classes: int,
        bn_gamma: float,
        width: float = 1.0,
        act_layer: ActLayer = HARDTANH,
        avgpool_shortcut: bool = False,
    ) -> None:
        super().__init__()
        widths = [scaled(c, width) for c in (16, 32, 64)]
        self.conv1 = nn.Conv2d(3, widths[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.act1 = act_layer(widths[0])
        layers, in_planes = [], widths[0]
        for stage, planes in enumerate(widths):
            blocks = []
            for i in range(blocks_per_stage):
                stride = 2 if (stage > 0 and i == 0) else 1
                shortcut = (
                    OptionAShortcut(in_planes, planes, stride, avgpool_shortcut)
                    if (stride != 1 or in_planes != planes)
                    else nn.Identity()
                )
                blocks.append(block(conv, in_planes, planes, stride, stage, shortcut, act_layer))
                in_planes = planes
            layers.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = layers
        self.bn2 = nn.BatchNorm1d(in_planes)
        self.linear = nn.Linear(in_planes, num_classes)
        init_kaiming(self, bn_gamma)

    def forward(self, x: Tensor) -> Tensor:
        out = self.act1(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.linear(self.bn2(out))


class CifarResNet18Block(nn.Module):
    """Hardtanh(BN(conv)) -> BN(conv) + shortcut -> Hardtanh; the downsampling shortcut is a
    *binarized* 1x1 conv + BN (it is rotated like every other binary conv in RBNN)."""

    def __init__(
        self, conv, in_planes: int, planes: int, stride: int, stage: int, act_layer: ActLayer = HARDTANH
    ) -> None:
        super().__init__()
        self.conv1 = conv(in_planes, planes, 3, stride, 1, stage=stage)
        self.bn1 = nn.BatchNorm2d(planes)
        self.act1 = act_layer(planes)
        self.conv2 = conv(planes, planes, 3, 1, 1, stage=stage)
        self.bn2 = nn.BatchNorm2d(planes)
        self.act2 = act_layer(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(conv(in_planes, planes, 1, stride, 0, stage=stage), nn.BatchNorm2d(planes))

    def forward(self, x: Tensor) -> Tensor:
        out = self.act1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out)) + self.shortcut(x)
        return self.act2(out)


class CifarResNet18(nn.Module):
    """CIFAR ResNet-18 (64/128/256/512, 2 blocks per stage, strides 1/2/2/2): FP stem conv
    3->64 -> BN with no activation; 4x4 average pool -> BatchNorm1d(512) -> FP linear.
    PyTorch default init (BN weight 1), as in the code."""

    def __init__(
        self, conv, num_classes: int, bn_gamma: float, width: float = 1.0, act_layer: ActLayer = HARDTANH
    ) -> None:
        super().__init__()
        stem = scaled(64, width)
        self.conv1 = nn.Conv2d(3, stem, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(stem)
        layers, in_planes = [], stem
        for stage, (planes, stride) in enumerate(((64, 1), (128, 2), (256, 2), (512, 2))):
            planes = scaled(planes, width)
            layers.append(
                nn.Sequential(
                    CifarResNet18Block(conv, in_planes, planes, stride, stage, act_layer),
                    CifarResNet18Block(conv, planes, planes, 1, stage, act_layer),
                )
            )
            in_planes = planes
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.bn2 = nn.BatchNorm1d(in_planes)
        self.linear = nn.Linear(in_planes, num_classes)
        if bn_gamma != 1.0:
            for m in self.modules():
                if isinstance(m, nn.BatchNorm2d):
                    nn.init.constant_(m.weight, bn_gamma)

    def forward(self, x: Tensor) -> Tensor:
        out = self.bn1(self.conv1(x))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.linear(self.bn2(out))


def _avgpool(cfg: ModelConfig) -> bool:
    return cfg.shortcut == "avgpool_pad"


def _gamma(cfg: ModelConfig, default: float) -> float:
    return default if cfg.bn_gamma_init is None else cfg.bn_gamma_init


@register_model("resnet20", "CIFAR ResNet-20 (RBNN code: Hardtanh, option-A shortcuts, BN gamma 1e-8)")
def resnet20(cfg: ModelConfig, conv, num_classes: int) -> nn.Module:
    return CifarResNet(conv, BasicBlock, 3, num_classes, _gamma(cfg, 1e-8), cfg.width, cfg.act_layer(), _avgpool(cfg))


@register_model("resnet32", "CIFAR ResNet-32 (as ResNet-20 with 5 blocks per stage)")
def resnet32(cfg: ModelConfig, conv, num_classes: int) -> nn.Module:
    return CifarResNet(conv, BasicBlock, 5, num_classes, _gamma(cfg, 1e-8), cfg.width, cfg.act_layer(), _avgpool(cfg))


@register_model("resnet20_bireal", "CIFAR ResNet-20 with a Bi-Real shortcut around every binary conv")
def resnet20_bireal(cfg: ModelConfig, conv, num_classes: int) -> nn.Module:
    return CifarResNet(conv, BiRealBlock, 3, num_classes, _gamma(cfg, 1e-8), cfg.width, cfg.act_layer(), _avgpool(cfg))


@register_model("resnet18_cifar", "CIFAR ResNet-18 (binarized 1x1 downsample shortcuts, BN gamma 1)")
def resnet18_cifar(cfg: ModelConfig, conv, num_classes: int) -> nn.Module:
    return CifarResNet18(conv, num_classes, _gamma(cfg, 1.0), cfg.width, cfg.act_layer())
