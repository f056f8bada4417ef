"""Bi-Real Net (Liu, Wu, Luo, Yang, Liu, Cheng, ECCV 2018; IJCV 2020).

Activations: sign(x) with the ApproxSign backward max(0, 2 - 2|x|) (Sec. 3.2). Weights: the
magnitude-aware sign W_b = alpha * sign(W), alpha = mean|W| per output channel (Sec. 3.3),
whose backward scales the straight-through gradient by alpha. The official implementations do
not all follow the paper's weight gradient; ``weight_grad`` selects which one to run
(Bi-Real Net, arXiv:1808.00278, Sec. 3.2, Eq. 8):

=====================  =======================================  ===============================
``weight_grad``        dL/dW (g = dL/dW_b, F' = weight surr.)   what it reproduces
=====================  =======================================  ===============================
``paper`` (default)    alpha * F'(W) * g, alpha a constant      paper Sec. 3.3; larq's
                                                                ``MagnitudeAwareSign``
``official_pytorch``   F'(W) * g, no alpha factor               official PyTorch code (identity
                                                                through clamp(W, -1, 1))
``caffe``              g, straight through (F' ignored)         official Caffe layer
``exact``              alpha F'(W_i) g_i                        autograd through alpha too (the
                       + sign(W_i)/n sum_j g_j sign(W_j)        coupled term the paper drops)
=====================  =======================================  ===============================

With the default ``weight_surrogate=clipped_ste`` (clip 1), F'(W) = 1{|W| <= 1}: the edge
|W| = 1 passes, as in larq. The paper writes 1{|W| < 1}, and the official PyTorch code's
clamp(W, -1, 1) also passes nothing at exactly |W| = 1 (PyTorch 2.x scalar-clamp backward);
the two differ only on that measure-zero set.

Linear layers (:class:`BiRealLinear`): the same rule per output row, as BiBench's
``BiRealLinear`` (htqin/BiBench ``bibench/models/layers/bireal.py``): y = sign(x) @ (alpha *
sign(W))^T + b, alpha = mean|W| per row, ApproxSign on every input feature; the bias b stays full
precision (added after the binary matmul). BiBench's linear uses the ``official_pytorch`` weight
gradient; ``weight_grad`` selects it for convolutions and linear layers alike.

Block structure (one binary conv per shortcut, AvgPool -> real 1x1 conv downsample) belongs to
the model: use ``model=resnet20_bireal`` on CIFAR, ``model=resnet18|resnet34
model.downsample=avgpool_conv`` on ImageNet.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor

from binexp.quant.layers import ConvSpec, LinearSpec, QuantConv2d, QuantLayer, QuantLinear, Storage
from binexp.quant.registry import check_choice, register_linear, register_quantizer
from binexp.quant.sign import SurrogateParams, make_surrogate, sign_pm1, surrogate_names

WEIGHT_GRADS = ("paper", "official_pytorch", "caffe", "exact")


@dataclass
class BiRealConfig:
    """``quantizer=bireal`` (conf/quantizer/bireal.yaml states only what differs). Defaults: W1/A1,
    the paper's ApproxSign for activations and magnitude-aware weight gradient."""

    name: str = "bireal"
    # False: the conv uses the real latent weight W (no alpha, 32 bit/weight). Stage 1 of the
    # two-stage recipe (binary activations + real weights); stage 2 (both binary) starts from it
    # with init_from=<stage-1 run dir>
    binary_weights: bool = True
    # False: real-valued conv input (W1/A32); both False is refused (use quantizer=fp)
    binary_activations: bool = True
    # F'(W) = 1{|W| <= clip}: the paper's 1{|W| < 1} with the edge |W| = 1 included (larq's convention);
    # any name from `binexp list surrogate`
    weight_surrogate: str = "clipped_ste"
    # F'(x) = max(0, 2 - 2|x|): the paper's ApproxSign (2 at 0, 1 at +-0.5, 0 at +-1)
    act_surrogate: str = "approx_sign"
    surrogate_params: SurrogateParams = field(default_factory=SurrogateParams)
    # Weight gradient, g = dL/dW_b (the forward is alpha * sign(W) in every case):
    #   paper            alpha * F'(W) * g, alpha held constant (paper Sec. 3.3; larq MagnitudeAwareSign)
    #   official_pytorch F'(W) * g, no alpha factor (official PyTorch code: identity through clamp(W, -1, 1))
    #   caffe            g, straight through, F' ignored (official Caffe binary-conv layer)
    #   exact            autograd through alpha as well: adds sign(W_i)/n * sum_j g_j sign(W_j) per channel
    weight_grad: str = "paper"

    def __post_init__(self) -> None:
        check_choice("weight_grad", self.weight_grad, WEIGHT_GRADS)
        check_choice("weight_surrogate", self.weight_surrogate, surrogate_names())
        check_choice("act_surrogate", self.act_surrogate, surrogate_names())
        if not (self.binary_weights or self.binary_activations):
            raise ValueError(
                "quantizer.binary_weights and quantizer.binary_activations are both false: nothing is "
                "binarized; fix: use quantizer=fp for the real-valued network"
            )


class BiRealBinary(QuantLayer):
    """Bi-Real Net binarization, whatever the geometry (:class:`BiRealConv2d`, :class:`BiRealLinear`).

    Forward: y = conv(sign(x), alpha * sign(W)), sign(0) = +1 for both, alpha = mean|W| over
    the C_in*k*k weights of each output channel (so W_b keeps each filter's L1 magnitude).
    ``binary_weights=false`` convolves with W itself; ``binary_activations=false`` with x itself.

    Backward: dL/dx = g * F_a'(x), by default ApproxSign's max(0, 2 - 2|x|) (2 at 0, 1 at
    +-0.5, 0 at and beyond +-1). dL/dW by ``weight_grad``: ``paper`` alpha * 1{|W| <= 1} * g
    with alpha held constant (stop-gradient), ``official_pytorch`` 1{|W| <= 1} * g, ``caffe`` g,
    ``exact`` autograd through alpha (adds sign(W_i)/n * sum_j g_j sign(W_j) per channel).

    Paper: Liu et al., "Bi-Real Net: Enhancing the Performance of 1-bit CNNs with Improved
    Representational Capability and Advanced Training Algorithm", ECCV 2018, Secs. 3.2-3.3."""

    def __init__(self, cfg: BiRealConfig, *geometry, **kw) -> None:
        super().__init__(*geometry, **kw)
        self.weight_grad = cfg.weight_grad
        self.binary_weights = cfg.binary_weights
        self._make_latent_weight()
        self.weight_sign = (
            make_surrogate(cfg.weight_surrogate, "weight", cfg.surrogate_params) if cfg.binary_weights else None
        )
        self.act_sign = (
            make_surrogate(cfg.act_surrogate, "activation", cfg.surrogate_params) if cfg.binary_activations else None
        )

    def alpha(self) -> Tensor:
        """Per-output-channel scale mean|W|, shape (C_out, 1, 1, 1) ((out, 1) for a linear
        layer), with its autograd graph."""
        return self.weight.abs().mean(dim=self.weight_dims, keepdim=True)

    def quantized_weight(self) -> Tensor:
        w = self.weight
        if self.weight_sign is None:
            return w
        if self.weight_grad == "exact":
            return self.alpha() * self.weight_sign(w)
        alpha = self.alpha().detach()
        if self.weight_grad == "paper":
            return alpha * self.weight_sign(w)
        if self.weight_grad == "official_pytorch":
            s = self.weight_sign(w)  # value sign(W), gradient F'(W) * g
            return alpha * s.detach() + (s - s.detach())  # value alpha*sign(W) exactly (s - s == 0)
        # caffe: value alpha*sign(W), gradient g straight through
        return alpha * sign_pm1(w) + (w - w.detach())

    def quantize_input(self, x: Tensor) -> Tensor:
        return self.act_sign(x) if self.act_sign is not None else x

    def extra_stats(self) -> dict[str, Tensor]:
        """Mean over output channels of alpha = mean|W| (the magnitude the weight gradient
        carries under ``weight_grad=paper``)."""
        return {"bireal_alpha": self.alpha().detach().mean()}

    def storage(self) -> Storage:
        """1 bit per weight and alpha (C_out floats; foldable into the next BatchNorm) at
        inference; 32 bits per weight and no alpha with ``binary_weights=false``."""
        if self.weight_sign is None:
            return Storage(weights=self.num_weights, weight_bits=32 * self.num_weights)
        return Storage(weights=self.num_weights, weight_bits=self.num_weights, inference_floats=self.out_channels)

    def extra_repr(self) -> str:
        w = f"weight_grad={self.weight_grad}" if self.weight_sign is not None else "real weights"
        a = "binary activations" if self.act_sign is not None else "real activations"
        return f"{super().extra_repr()}, {w}, {a}"


class BiRealConv2d(BiRealBinary, QuantConv2d):
    """Bi-Real Net binary convolution (the rule of :class:`BiRealBinary`)."""

    def __init__(
        self,
        cfg: BiRealConfig,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
    ) -> None:
        super().__init__(cfg, in_channels, out_channels, kernel_size, stride, padding)


class BiRealLinear(BiRealBinary, QuantLinear):
    """Bi-Real Net binary linear layer: y = sign(x) @ (alpha * sign(W))^T + b, alpha = mean|W|
    per output row, b full precision (the rule of :class:`BiRealBinary`)."""

    def __init__(self, cfg: BiRealConfig, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__(cfg, in_features, out_features, bias)


@register_quantizer(
    "bireal", BiRealConfig, "Bi-Real Net: ApproxSign activations, magnitude-aware sign weights (alpha=mean|W|)"
)
def build_bireal_conv(cfg: BiRealConfig, spec: ConvSpec) -> BiRealConv2d:
    return BiRealConv2d(cfg, spec.in_channels, spec.out_channels, spec.kernel_size, spec.stride, spec.padding)


@register_linear("bireal")
def build_bireal_linear(cfg: BiRealConfig, spec: LinearSpec) -> BiRealLinear:
    return BiRealLinear(cfg, spec.in_features, spec.out_features, spec.bias)
