"""Full precision: the same architecture with real-valued convolutions (the FP baseline row
of every table)."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from binexp.quant.layers import ConvSpec
from binexp.quant.registry import register_quantizer


@dataclass
class FPConfig:
    name: str = "fp"


@register_quantizer("fp", FPConfig, "full precision: real-valued convs in the same architecture")
def build_fp_conv(cfg: FPConfig, spec: ConvSpec) -> nn.Module:
    """Forward: ordinary convolution (no bias). Backward: exact gradient. No paper: the baseline."""
    return nn.Conv2d(spec.in_channels, spec.out_channels, spec.kernel_size, spec.stride, spec.padding, bias=False)
