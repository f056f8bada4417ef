"""ReActNet (Liu, Shen, Savvides, Cheng, ECCV 2020, arXiv:2003.03488): RSign.

RSign shifts each input channel by a learnable threshold before the sign, so the network
learns where each channel's activations split into -1 and +1. The official code
(liuzechun/ReActNet, ``resnet/2_step2/birealnet.py`` and ``mobilenet/2_step2/reactnet.py``:
``LearnableBias`` -> ``BinaryActivation`` -> ``HardBinaryConv``) writes the threshold as a
per-channel bias b added to the input, b = -alpha of the paper, initialised to 0; BiBench
(``bibench/models/layers/react.py``) puts the same threshold inside the conv, as here.

The rest of the layer is Bi-Real Net's as the official ReActNet code runs it: weights
alpha * sign(W), alpha = mean|W| per output channel (detached), gradient through clamp(W, -1, 1)
(``weight_grad=official_pytorch``); activations with ApproxSign's backward. RPReLU, ReActNet's
other half, is a model activation (``model.act=rprelu``); the two-step recipe is step 1
``quantizer.binary_weights=false`` (binary activations, real weights) and step 2 the default
from ``init_from=<step-1 run>``.

Fidelity: ``ReActConv2d`` was compared in float64 with the official ``LearnableBias`` +
``BinaryActivation`` + ``HardBinaryConv`` (liuzechun/ReActNet @ a6cd08d, resnet/2_step2/birealnet.py)
on the same weights, thresholds and inputs: output, dL/dx, dL/dW and dL/db agree to 1e-12
(tests/unit/test_reactnet.py holds the official code's values as golden numbers).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from binexp.quant.bireal import BiRealBinary, BiRealConfig
from binexp.quant.layers import ConvSpec, LinearSpec, QuantConv2d, QuantLinear, Storage
from binexp.quant.registry import register_linear, register_quantizer


@dataclass
class ReActNetConfig(BiRealConfig):
    """Bi-Real Net's fields with the official ReActNet code's weight gradient; plus the threshold."""

    name: str = "reactnet"
    # F'(W) * g through clamp(W, -1, 1), no alpha factor (official HardBinaryConv)
    weight_grad: str = "official_pytorch"
    # learnable per-input-channel threshold of RSign; false: plain sign (Bi-Real Net)
    learnable_threshold: bool = True
    threshold_init: float = 0.0  # official LearnableBias: zeros


class ReActBinary(BiRealBinary):
    """ReActNet binarization (RSign + magnitude-aware sign weights), whatever the geometry.

    Forward: y = conv(sign(x + b), alpha * sign(W)), b a learnable (1, C_in, 1, 1) threshold
    (init 0; the paper's alpha_c = -b_c), alpha = mean|W| per output channel, sign(0) = +1.
    Backward: dL/dx = g * max(0, 2 - 2|x + b|) (ApproxSign at the shifted input), dL/db_c = the
    same summed over batch and positions of channel c; dL/dW = g * 1{|W| <= 1} (official code:
    identity through clamp(W, -1, 1), no alpha).
    Paper: Liu et al., "ReActNet: Towards Precise Binary Neural Network with Generalized
    Activation Functions", ECCV 2020, arXiv:2003.03488 (RSign)."""

    def __init__(self, cfg: ReActNetConfig, *geometry) -> None:
        super().__init__(cfg, *geometry)
        self.threshold: nn.Parameter | None = None
        if cfg.learnable_threshold and self.act_sign is not None:
            # (1, C_in, 1, 1) before a conv; (in,) before a linear layer (the last dim of its input)
            shape = (1, self.in_channels, 1, 1) if isinstance(self, QuantConv2d) else (self.in_channels,)
            self.threshold = nn.Parameter(torch.full(shape, float(cfg.threshold_init)))

    def act_latent(self, x: Tensor) -> Tensor | None:
        if self.act_sign is None:
            return None
        return x if self.threshold is None else x + self.threshold

    def quantize_input(self, x: Tensor) -> Tensor:
        latent = self.act_latent(x)
        return x if latent is None or self.act_sign is None else self.act_sign(latent)

    def extra_stats(self) -> dict[str, Tensor]:
        stats = super().extra_stats()
        if self.threshold is not None:
            stats["reactnet_threshold_abs"] = self.threshold.detach().abs().mean()
        return stats

    def storage(self) -> Storage:
        """Bi-Real Net's storage plus the C_in thresholds (needed at inference)."""
        s = super().storage()
        if self.threshold is not None:
            s.inference_floats += self.in_channels
        return s


class ReActConv2d(ReActBinary, QuantConv2d):
    """ReActNet binary convolution (the rule of :class:`ReActBinary`)."""

    def __init__(self, cfg: ReActNetConfig, spec: ConvSpec) -> None:
        super().__init__(cfg, spec.in_channels, spec.out_channels, spec.kernel_size, spec.stride, spec.padding)


class ReActLinear(ReActBinary, QuantLinear):
    """ReActNet binary linear layer: y = sign(x + b) @ (alpha sign(W))^T + bias, b a learnable
    threshold per input feature, alpha = mean|W| per output row, bias full precision. BiBench's
    ``ReActLinear`` adds b only inside its surrogate, not in the forward (a bug); here b shifts the
    forward too, as in the convolution."""

    def __init__(self, cfg: ReActNetConfig, spec: LinearSpec) -> None:
        super().__init__(cfg, spec.in_features, spec.out_features, spec.bias)


@register_quantizer("reactnet", ReActNetConfig, "ReActNet: RSign (learnable per-channel thresholds) + Bi-Real weights")
def build_reactnet_conv(cfg: ReActNetConfig, spec: ConvSpec) -> ReActConv2d:
    return ReActConv2d(cfg, spec)


@register_linear("reactnet")
def build_reactnet_linear(cfg: ReActNetConfig, spec: LinearSpec) -> ReActLinear:
    return ReActLinear(cfg, spec)
