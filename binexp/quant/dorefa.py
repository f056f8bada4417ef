"""DoReFa-Net (Zhou, Wu, Ni, Zhou, Wen, Zou 2016), W1/A1 by default, k-bit weights and activations as options.

``variant=paper`` (default: the authors' code, tensorpack ``examples/DoReFa-Net/dorefa.py:get_dorefa``
and ``alexnet-dorefa.py``, which the paper points to):

* weights, 1 bit: W_q = E * sign(W), E = mean|W| over the **whole layer** (one scalar, stop-
  gradient); backward straight through, dL/dW = g (the code overrides Sign's gradient with the
  identity, no clipping);
* weights, k >= 2 bits: W_q = 2 quantize_k(tanh(W) / (2 max|tanh(W)|) + 1/2) - 1, autograd through
  tanh and the max, identity through the rounding;
* activations, k bits: x_q = quantize_k(clip(x, 0, 1)) with quantize_k(v) = round(v (2^k - 1)) /
  (2^k - 1), rounding half to even (so 1 bit gives {0, 1}, 0.5 -> 0); backward
  dL/dx = g * 1{0 <= x <= 1} (the clip's gradient, edges included as in TensorFlow, identity
  through the rounding).

``variant=bibench`` (BiBench's ``DoReFaConv2d``, htqin/BiBench@5a04a6d
``bibench/models/layers/dorefa.py``): W_q = alpha_c sign(W) with alpha_c = mean|W| per output
channel, detached, gradient g * 1{|W| <= 1} (no alpha); x_q = sign(x) in {-1, +1} with
gradient g * 1{|x| <= 1} - i.e. BiBench-XNOR without the activation scale, not the paper's {0, 1}
activations. W1/A1 only.

Gradient quantization (the paper's "G" bits) is not implemented (BiBench has none either).
Which layers stay full precision (the code keeps the first conv and the last FC real) belongs
to the model, as for every method here.

Checked (float64, same weights and inputs): ``variant=bibench`` against BiBench's
``DoReFaConv2d`` and ``DoReFaLinear`` (whose weight gradient keeps alpha, unlike the conv's) -
output, dL/dx, dL/dW (dL/db) agree to 1e-15 (no input or weight at |.| = 1, where
BiBench's clamp blocks the edge and binexp passes it); ``variant=paper`` against a
line-by-line PyTorch transcription of tensorpack's ``fw``/``fa`` (TensorFlow is not installed):
same numbers to 1e-15 for 1-, 2- and 3-bit weights and 1- and 2-bit activations
(tests/unit/test_dorefa.py).

Paper: Zhou et al., "DoReFa-Net: Training Low Bitwidth Convolutional Neural Networks with Low
Bitwidth Gradients", arXiv:1606.06160.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from binexp.quant.layers import ConvSpec, LinearSpec, QuantConv2d, QuantLayer, QuantLinear, Storage
from binexp.quant.registry import check_choice, register_linear, register_quantizer
from binexp.quant.sign import Surrogate, SurrogateParams, make_surrogate, sign_pm1

VARIANTS = ("paper", "bibench")
MAX_BITS = 8


@dataclass
class DorefaConfig:
    name: str = "dorefa"
    # paper: the authors' tensorpack code (layer-wise E, identity gradient, {0,1} activations)
    # bibench: BiBench's DoReFaConv2d (per-channel alpha, clipped STE, {-1,+1} activations)
    variant: str = "paper"
    # bits of the weights (1: E*sign(W); 2..8: the tanh-normalised k-bit quantizer) and of the
    # activations (1..8: quantize_k(clip(x, 0, 1))); bibench: 1 and 1 only
    weight_bits: int = 1
    act_bits: int = 1
    # false: real-valued conv input (W{k}/A32)
    binary_activations: bool = True

    def __post_init__(self) -> None:
        check_choice("variant", self.variant, VARIANTS)
        for key in ("weight_bits", "act_bits"):
            if not 1 <= getattr(self, key) <= MAX_BITS:
                raise ValueError(f"quantizer.{key}={getattr(self, key)} is not valid; choose 1 to {MAX_BITS}")
        if self.variant == "bibench" and (self.weight_bits, self.act_bits) != (1, 1):
            raise ValueError(
                "quantizer.variant=bibench is W1/A1 only (BiBench's DoReFaConv2d); "
                "fix: weight_bits=1 act_bits=1, or variant=paper for k-bit"
            )


def quantize_k(v: Tensor, bits: int) -> Tensor:
    """round(v (2^k - 1)) / (2^k - 1), half to even, with an identity gradient (DoReFa's quantize_k)."""
    n = float(2**bits - 1)
    q = torch.round(v.detach() * n) / n
    return q + (v - v.detach())  # value q exactly


class _Clip01(torch.autograd.Function):
    """clip(x, 0, 1) whose gradient passes at the edges 0 and 1, as TensorFlow's clip_by_value
    (torch.clamp's scalar-bound backward blocks them)."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        ctx.save_for_backward(x)
        return x.clamp(0.0, 1.0)

    @staticmethod
    def backward(ctx, grad: Tensor):
        (x,) = ctx.saved_tensors
        return grad * ((x >= 0) & (x <= 1)).to(grad.dtype)


class DorefaBinary(QuantLayer):
    """DoReFa-Net quantization, whatever the geometry (:class:`DorefaConv2d`, :class:`DorefaLinear`):
    y = conv(x_q, W_q) (a matmul plus the full-precision bias in a linear layer; the module
    docstring gives both variants; the paper applies the same fw/fa to fully connected layers,
    BiBench's ``DoReFaLinear`` is the bibench rule with alpha per output row).

    Paper: Zhou et al., arXiv:1606.06160."""

    # bibench: BiBench's DoReFaConv2d leaves alpha out of the weight gradient, its DoReFaLinear
    # (sign first, then times the detached alpha) keeps it
    bibench_alpha_in_grad = False

    def __init__(self, cfg: DorefaConfig, *geometry, **kw) -> None:
        super().__init__(*geometry, **kw)
        self.variant = cfg.variant
        self.weight_bits = cfg.weight_bits
        self.act_bits = cfg.act_bits
        self.binary_activations = cfg.binary_activations
        self._make_latent_weight()
        self.weight_sign: Surrogate | None = None  # bibench only: the paper variant has its own rules
        self.act_sign: Surrogate | None = None
        if cfg.variant == "bibench":
            params = SurrogateParams(clip=1.0)
            self.weight_sign = make_surrogate("clipped_ste", "weight", params)
            self.act_sign = make_surrogate("clipped_ste", "activation", params) if cfg.binary_activations else None

    def quantized_weight(self) -> Tensor:
        w = self.weight
        if self.weight_sign is not None:  # bibench
            alpha = w.detach().abs().mean(dim=self.weight_dims, keepdim=True)
            s = self.weight_sign(w)  # value sign(W), gradient F'(W) * g
            if self.bibench_alpha_in_grad:
                return alpha * s  # BiBench's DoReFaLinear: gradient alpha * F'(W) * g
            return alpha * s.detach() + (s - s.detach())  # value alpha*sign(W) exactly, no alpha in the gradient
        if self.weight_bits == 1:
            e = w.detach().abs().mean()
            return e * sign_pm1(w) + (w - w.detach())  # value E sign(W), gradient identity
        t = torch.tanh(w)
        v = t / t.abs().max() * 0.5 + 0.5
        return 2 * quantize_k(v, self.weight_bits) - 1

    def quantize_input(self, x: Tensor) -> Tensor:
        if not self.binary_activations:
            return x
        if self.act_sign is not None:  # bibench
            return self.act_sign(x)
        return quantize_k(_Clip01.apply(x), self.act_bits)

    def binary_input(self) -> bool:
        """bibench: the activation surrogate; paper: its own {0, 1} rule, 1 bit at W1/A1."""
        return super().binary_input() or (self.binary_activations and self.act_bits == 1 and self.weight_bits == 1)

    def act_latent(self, x: Tensor) -> Tensor | None:
        """bibench: x (sign(x) is the binary input); paper: the {0,1} input is 1{x > 1/2}, so
        x - 1/2 is the tensor whose sign it is (up to the measure-zero tie at 1/2)."""
        if not self.binary_activations:
            return None
        return x if self.variant == "bibench" or self.act_bits > 1 else x - 0.5

    def weight_signs(self) -> Tensor:
        return sign_pm1(self.weight)

    def penalty_weight(self) -> Tensor | None:
        return self.weight if self.weight_bits == 1 else None

    def storage(self) -> Storage:
        """weight_bits per weight; the scale: 1 float (paper, 1 bit), C_out floats (bibench),
        none for k >= 2 bits (the levels are fixed: -1 .. 1 in 2^k steps)."""
        n = self.num_weights
        floats = self.out_channels if self.variant == "bibench" else (1 if self.weight_bits == 1 else 0)
        return Storage(weights=n, weight_bits=self.weight_bits * n, inference_floats=floats)

    def extra_repr(self) -> str:
        a = f"A{self.act_bits}" if self.binary_activations else "A32"
        return f"{super().extra_repr()}, variant={self.variant}, W{self.weight_bits}/{a}"


class DorefaConv2d(DorefaBinary, QuantConv2d):
    """DoReFa-Net convolution (the rule of :class:`DorefaBinary`)."""

    def __init__(self, cfg: DorefaConfig, spec: ConvSpec) -> None:
        super().__init__(cfg, spec.in_channels, spec.out_channels, spec.kernel_size, spec.stride, spec.padding)


class DorefaLinear(DorefaBinary, QuantLinear):
    """DoReFa-Net linear layer, bias full precision (the rule of :class:`DorefaBinary`); with
    ``variant=bibench`` the weight gradient is alpha * 1{|W| <= 1} * g, as BiBench's ``DoReFaLinear``."""

    bibench_alpha_in_grad = True

    def __init__(self, cfg: DorefaConfig, spec: LinearSpec) -> None:
        super().__init__(cfg, spec.in_features, spec.out_features, spec.bias)


@register_quantizer("dorefa", DorefaConfig, "DoReFa-Net: E*sign(W) (layer-wise E), {0,1} activations; k-bit option")
def build_dorefa_conv(cfg: DorefaConfig, spec: ConvSpec) -> DorefaConv2d:
    return DorefaConv2d(cfg, spec)


@register_linear("dorefa")
def build_dorefa_linear(cfg: DorefaConfig, spec: LinearSpec) -> DorefaLinear:
    return DorefaLinear(cfg, spec)
