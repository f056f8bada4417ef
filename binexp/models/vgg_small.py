"""VGG-small as the official RBNN code builds it (lmbxmu/RBNN, ``cifar/models_cifar/vgg.py``);
activation ``model.act`` (Hardtanh), channels scaled by ``model.width``."""

from __future__ import annotations

import math

import torch.nn.functional as F
from torch import Tensor, nn

from binexp.models.activations import ActLayer, get_act_layer
from binexp.models.registry import ModelConfig, register_model, scaled
from binexp.quant.layers import QuantConv2d

HARDTANH = get_act_layer("hardtanh")


class VGGSmall(nn.Module):
    """FP conv0 3->128 -> BN -> Hardtanh; binary convs 128->128 (pool), 128->256, 256->256
    (pool), 256->512, 512->512 (pool), each ordered conv -> [max-pool 2] -> BN -> Hardtanh;
    flatten 512*4*4 -> FP linear (no BN before the classifier).
    Init: conv N(0, sqrt(2/(k*k*C_out))), BN weight 1, linear N(0, 0.01) with zero bias."""

    def __init__(
        self, conv, num_classes: int, bn_gamma: float, width: float = 1.0, act_layer: ActLayer = HARDTANH
    ) -> None:
        super().__init__()
        c128, c256, c512 = (scaled(c, width) for c in (128, 256, 512))
        self.conv0 = nn.Conv2d(3, c128, 3, 1, 1, bias=False)
        self.bn0 = nn.BatchNorm2d(c128)
        self.act0 = act_layer(c128)
        widths = [(c128, c128, True), (c128, c256, False), (c256, c256, True), (c256, c512, False), (c512, c512, True)]
        self.convs = nn.ModuleList()
        self.bns = nn.ModuleList()
        self.acts = nn.ModuleList()
        self.pools: list[bool] = []
        for stage, (cin, cout, pool) in enumerate(widths):
            self.convs.append(conv(cin, cout, 3, 1, 1, stage=stage))
            self.bns.append(nn.BatchNorm2d(cout))
            self.acts.append(act_layer(cout))
            self.pools.append(pool)
        self.fc = nn.Linear(c512 * 4 * 4, num_classes)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, QuantConv2d)):
                std = math.sqrt(2.0 / (m.kernel_size[0] * m.kernel_size[1] * m.out_channels))

                def init(w, std=std):
                    return nn.init.normal_(w, 0.0, std)

                init(m.weight) if isinstance(m, nn.Conv2d) else m.reset_latent_weight(init)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, bn_gamma)
                nn.init.zeros_(m.bias)
        nn.init.normal_(self.fc.weight, 0.0, 0.01)
        nn.init.zeros_(self.fc.bias)

    def forward(self, x: Tensor) -> Tensor:
        out = self.act0(self.bn0(self.conv0(x)))
        for conv, bn, act, pool in zip(self.convs, self.bns, self.acts, self.pools):
            out = conv(out)
            if pool:
                out = F.max_pool2d(out, 2)
            out = act(bn(out))
        # 32x32 inputs reach 4x4 here; other sizes are pooled to 4x4 so the classifier fits.
        out = F.adaptive_avg_pool2d(out, 4) if out.shape[-1] != 4 else out
        return self.fc(out.flatten(1))


@register_model("vgg_small", "VGG-small (RBNN code: 5 binary convs, Hardtanh, no BN before the classifier)")
def vgg_small(cfg: ModelConfig, conv, num_classes: int) -> nn.Module:
    return VGGSmall(
        conv, num_classes, 1.0 if cfg.bn_gamma_init is None else cfg.bn_gamma_init, cfg.width, cfg.act_layer()
    )
