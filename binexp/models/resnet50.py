"""Binarized ResNet-50 (He et al. 2016, torchvision's ``resnet50`` layout) as BiBench/mmcls build
it (htqin/BiBench ``bibench/models/backbones/resnet.py``: ``Bottleneck`` with all three convs
from the binary ``conv_cfg``, stride on the 3x3, a full-precision 1x1 down-sampling shortcut).

Full precision: the 7x7/2 stem conv -> BN -> act -> 3x3/2 max-pool, every BatchNorm, the
down-sampling shortcuts (``model.downsample``: conv = 1x1 stride-2 conv + BN; avgpool_conv = 2x2
average pool -> 1x1 conv -> BN, Bi-Real Net's) and the classifier (global average pool -> linear).
Binarized, from the quantizer: the 1x1, 3x3 and 1x1 convs of the 16 bottlenecks (48 convs). With
``quantizer=fp`` and the defaults the network has exactly torchvision ``resnet50()``'s 25,557,032
parameters. ``model.act`` (hardtanh, the binary networks' choice; torchvision uses ReLU) follows
each BN of a bottleneck but the last, and the addition.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from binexp.models.activations import ActLayer
from binexp.models.common import init_kaiming
from binexp.models.registry import ModelConfig, register_model, scaled


class Bottleneck(nn.Module):
    """act(BN(conv1x1)) -> act(BN(conv3x3, stride)) -> BN(conv1x1 to 4w) + shortcut -> act."""

    expansion = 4

    def __init__(
        self, conv, in_planes: int, width: int, stride: int, stage: int, downsample: nn.Module | None, act_layer
    ) -> None:
        super().__init__()
        out = width * self.expansion
        self.conv1 = conv(in_planes, width, 1, 1, 0, stage=stage)
        self.bn1 = nn.BatchNorm2d(width)
        self.act1 = act_layer(width)
        self.conv2 = conv(width, width, 3, stride, 1, stage=stage)
        self.bn2 = nn.BatchNorm2d(width)
        self.act2 = act_layer(width)
        self.conv3 = conv(width, out, 1, 1, 0, stage=stage)
        self.bn3 = nn.BatchNorm2d(out)
        self.act3 = act_layer(out)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.act1(self.bn1(self.conv1(x)))
        out = self.act2(self.bn2(self.conv2(out)))
        return self.act3(self.bn3(self.conv3(out)) + identity)


class ResNet50(nn.Module):
    """Stages of (3, 4, 6, 3) bottlenecks of widths 64..512 (outputs 256..2048)."""

    def __init__(
        self, conv, num_classes: int, bn_gamma: float, downsample: str, width: float, act_layer: ActLayer
    ) -> None:
        super().__init__()
        in_planes = scaled(64, width)
        self.conv1 = nn.Conv2d(3, in_planes, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.act1 = act_layer(in_planes)
        stages = []
        for stage, (planes, n) in enumerate(zip((64, 128, 256, 512), (3, 4, 6, 3))):
            w = scaled(planes, width)
            blocks = []
            for i in range(n):
                stride = 2 if (stage > 0 and i == 0) else 1
                ds = None
                if stride != 1 or in_planes != w * Bottleneck.expansion:
                    out = w * Bottleneck.expansion
                    if downsample == "avgpool_conv" and stride != 1:
                        ds = nn.Sequential(
                            nn.AvgPool2d(2, stride), nn.Conv2d(in_planes, out, 1, bias=False), nn.BatchNorm2d(out)
                        )
                    else:
                        ds = nn.Sequential(nn.Conv2d(in_planes, out, 1, stride, bias=False), nn.BatchNorm2d(out))
                blocks.append(Bottleneck(conv, in_planes, w, stride, stage, ds, act_layer))
                in_planes = w * Bottleneck.expansion
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.fc = nn.Linear(in_planes, num_classes)
        init_kaiming(self, bn_gamma)

    def forward(self, x: Tensor) -> Tensor:
        out = F.max_pool2d(self.act1(self.bn1(self.conv1(x))), 3, 2, 1)
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        return self.fc(F.adaptive_avg_pool2d(out, 1).flatten(1))


@register_model(
    "resnet50",
    "ImageNet ResNet-50 (bottlenecks: 48 binary convs; FP stem, 1x1 down-sampling and fc; BiBench/mmcls layout)",
    input_size=224,
)
def resnet50(cfg: ModelConfig, conv, num_classes: int) -> nn.Module:
    gamma = 1.0 if cfg.bn_gamma_init is None else cfg.bn_gamma_init
    return ResNet50(conv, num_classes, gamma, cfg.downsample, cfg.width, cfg.act_layer())


__all__ = ["Bottleneck", "ResNet50"]
