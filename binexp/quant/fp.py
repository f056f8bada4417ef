"""Full precision: the same architecture with real-valued convolutions and linear layers (the
FP baseline row of every table)."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from binexp.quant.layers import ConvSpec, LinearSpec
from binexp.quant.registry import register_linear, register_quantizer


@dataclass
class FPConfig:
    name: str = "fp"


@register_quantizer("fp", FPConfig, "full precision: real-valued convs in the same architecture")
def build_fp_conv(cfg: FPConfig, spec: ConvSpec) -> nn.Module:
    """Forward: ordinary convolution (no bias). Backward: exact gradient. No paper: the baseline."""
    return nn.Conv2d(spec.in_channels, spec.out_channels, spec.kernel_size, spec.stride, spec.padding, bias=False)


@register_linear("fp")
def build_fp_linear(cfg: FPConfig, spec: LinearSpec) -> nn.Module:
    """Forward: ordinary ``nn.Linear`` (with its bias when ``spec.bias``). Backward: exact gradient."""
    return nn.Linear(spec.in_features, spec.out_features, bias=spec.bias)
