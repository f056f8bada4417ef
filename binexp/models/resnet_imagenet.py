"""ImageNet ResNet-18/34 with Bi-Real-style blocks, as the official RBNN code builds them
(lmbxmu/RBNN, ``imagenet/models_imagenet/resnet.py``; Bi-Real Net, arXiv:1808.00278). Activation
``model.act`` (Hardtanh), channels scaled by ``model.width``."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from binexp.models.activations import ActLayer, get_act_layer
from binexp.models.common import init_kaiming
from binexp.models.registry import ModelConfig, register_model, scaled

HARDTANH = get_act_layer("hardtanh")


class BiRealBasicBlock(nn.Module):
    """Two binary 3x3 convs, each with its own real-valued shortcut and a Hardtanh after the
    addition. The downsample shortcut is full precision."""

    def __init__(
        self,
        conv,
        in_planes: int,
        planes: int,
        stride: int,
        stage: int,
        downsample: nn.Module | None,
        act_layer: ActLayer = HARDTANH,
    ) -> None:
        super().__init__()
        self.conv1 = conv(in_planes, planes, 3, stride, 1, stage=stage)
        self.bn1 = nn.BatchNorm2d(planes)
        self.act1 = act_layer(planes)
        self.conv2 = conv(planes, planes, 3, 1, 1, stage=stage)
        self.bn2 = nn.BatchNorm2d(planes)
        self.act2 = act_layer(planes)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        out = self.act1(self.bn1(self.conv1(x)) + residual)
        return self.act2(self.bn2(self.conv2(out)) + out)


class ImageNetResNet(nn.Module):
    """FP stem 7x7/2 conv -> BN -> Hardtanh -> 3x3/2 max-pool; 4 stages (64..512);
    global average pool -> BatchNorm1d(512) -> FP fc. Kaiming-normal convs, BN2d gamma 1e-8."""

    def __init__(
        self,
        conv,
        layers: tuple[int, ...],
        num_classes: int,
        bn_gamma: float,
        downsample: str,
        width: float = 1.0,
        act_layer: ActLayer = HARDTANH,
    ) -> None:
        super().__init__()
        in_planes = scaled(64, width)
        self.conv1 = nn.Conv2d(3, in_planes, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.act1 = act_layer(in_planes)
        stages = []
        for stage, (planes, n) in enumerate(zip((64, 128, 256, 512), layers)):
            planes = scaled(planes, width)
            blocks = []
            for i in range(n):
                stride = 2 if (stage > 0 and i == 0) else 1
                ds = None
                if stride != 1 or in_planes != planes:
                    if downsample == "avgpool_conv":
                        ds = nn.Sequential(
                            nn.AvgPool2d(2, stride), nn.Conv2d(in_planes, planes, 1, bias=False), nn.BatchNorm2d(planes)
                        )
                    else:
                        ds = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))
                blocks.append(BiRealBasicBlock(conv, in_planes, planes, stride, stage, ds, act_layer))
                in_planes = planes
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.bn2 = nn.BatchNorm1d(in_planes)
        self.fc = nn.Linear(in_planes, num_classes)
        init_kaiming(self, bn_gamma)

    def forward(self, x: Tensor) -> Tensor:
        out = F.max_pool2d(self.act1(self.bn1(self.conv1(x))), 3, 2, 1)
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.fc(self.bn2(out))


@register_model("resnet18", "ImageNet ResNet-18, Bi-Real-style blocks (16 binary convs, FP downsample)", input_size=224)
def resnet18(cfg: ModelConfig, conv, num_classes: int) -> nn.Module:
    return ImageNetResNet(
        conv,
        (2, 2, 2, 2),
        num_classes,
        1e-8 if cfg.bn_gamma_init is None else cfg.bn_gamma_init,
        cfg.downsample,
        cfg.width,
        cfg.act_layer(),
    )


@register_model("resnet34", "ImageNet ResNet-34, Bi-Real-style blocks (32 binary convs, FP downsample)", input_size=224)
def resnet34(cfg: ModelConfig, conv, num_classes: int) -> nn.Module:
    return ImageNetResNet(
        conv,
        (3, 4, 6, 3),
        num_classes,
        1e-8 if cfg.bn_gamma_init is None else cfg.bn_gamma_init,
        cfg.downsample,
        cfg.width,
        cfg.act_layer(),
    )
