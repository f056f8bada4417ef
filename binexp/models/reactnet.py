"""ReActNet-A (Liu, Shen, Savvides, Cheng, "ReActNet: Towards Precise Binary Neural Network with
Generalized Activation Functions", ECCV 2020, arXiv 2003.03488), the MobileNetV1-based network
of the official code (liuzechun/ReActNet ``mobilenet/2_step2/reactnet.py``) and of BiBench
(htqin/BiBench ``bibench/models/backbones/reactnet.py``).

Full precision: the 3x3 stem conv (stride ``model.stem_stride``, no activation after its BN), the
BatchNorms, the RPReLU activations (``model.act``, default ``rprelu``), the shortcuts (identity,
or a 2x2 average pool when the block down-samples) and the classifier (global average pool ->
linear, no BatchNorm1d, no dropout). Binarized, from the quantizer: every 3x3 and 1x1 conv of the
13 blocks (31 convs). The sign of a block's input and its learnable threshold (the official
``move11``/``move21`` + ``BinaryActivation``) belong to the quantizer, as in BiBench: with
``quantizer=reactnet`` each binary conv carries its own threshold.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from binexp.models.activations import ActLayer
from binexp.models.common import init_kaiming
from binexp.models.registry import ModelConfig, register_model, scaled

# output channels of the stem (entry 0) and of the 13 blocks
CHANNELS = (32, 64, 128, 128, 256, 256, 512, 512, 512, 512, 512, 512, 1024, 1024)


class ReActBlock(nn.Module):
    """out1 = act1(BN(conv3x3_s(x)) + pool(x)); out2 = act2(BN(conv1x1(out1)) + out1) when C_in = C_out,
    else act2(cat[BN(conv1x1_a(out1)) + out1, BN(conv1x1_b(out1)) + out1]) (C_out = 2 C_in: the
    1x1 part is duplicated rather than widened, so both halves keep an identity shortcut)."""

    def __init__(self, conv, in_planes: int, planes: int, stride: int, stage: int, act_layer: ActLayer) -> None:
        super().__init__()
        if planes not in (in_planes, 2 * in_planes):
            raise ValueError(f"a ReActNet block maps C to C or 2C channels, got {in_planes} -> {planes}")
        self.conv3x3 = conv(in_planes, in_planes, 3, stride, 1, stage=stage)
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.pool = nn.AvgPool2d(2, 2) if stride == 2 else nn.Identity()
        self.act1 = act_layer(in_planes)
        self.pointwise = nn.ModuleList(
            conv(in_planes, in_planes, 1, 1, 0, stage=stage) for _ in range(planes // in_planes)
        )
        self.bn2 = nn.ModuleList(nn.BatchNorm2d(in_planes) for _ in range(planes // in_planes))
        self.act2 = act_layer(planes)

    def forward(self, x: Tensor) -> Tensor:
        out1 = self.act1(self.bn1(self.conv3x3(x)) + self.pool(x))
        out2 = [bn(pw(out1)) + out1 for pw, bn in zip(self.pointwise, self.bn2)]
        return self.act2(out2[0] if len(out2) == 1 else torch.cat(out2, dim=1))


class ReActNetA(nn.Module):
    """Stem conv 3x3 (stride 2) -> BN; 13 blocks (stride 2 where the width changes, except into
    64 channels: strides 1,2,1,2,1,2,1,1,1,1,1,2,1); global average pool -> FP linear."""

    def __init__(
        self, conv, num_classes: int, bn_gamma: float, width: float, act_layer: ActLayer, stem_stride: int = 2
    ) -> None:
        super().__init__()
        chans = [scaled(c, width) for c in CHANNELS]
        self.conv1 = nn.Conv2d(3, chans[0], 3, stem_stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(chans[0])
        blocks, stage = [], 0
        for i in range(1, len(CHANNELS)):
            stride = 2 if CHANNELS[i - 1] != CHANNELS[i] and CHANNELS[i] != 64 else 1
            stage += stride == 2
            blocks.append(ReActBlock(conv, chans[i - 1], chans[i], stride, stage, act_layer))
        self.features = nn.Sequential(*blocks)
        self.fc = nn.Linear(chans[-1], num_classes)
        init_kaiming(self, bn_gamma)

    def forward(self, x: Tensor) -> Tensor:
        out = self.features(self.bn1(self.conv1(x)))
        return self.fc(F.adaptive_avg_pool2d(out, 1).flatten(1))


@register_model(
    "reactnet_a",
    "ReActNet-A (MobileNetV1 backbone, 31 binary convs, duplicated 1x1 down-sampling, RPReLU)",
    input_size=224,
)
def reactnet_a(cfg: ModelConfig, conv, num_classes: int) -> nn.Module:
    """``model.act`` (conf/model/reactnet_a.yaml: rprelu) after each of a block's two additions."""
    gamma = 1.0 if cfg.bn_gamma_init is None else cfg.bn_gamma_init
    return ReActNetA(conv, num_classes, gamma, cfg.width, cfg.act_layer(), cfg.stem_stride)


__all__ = ["CHANNELS", "ReActBlock", "ReActNetA"]
