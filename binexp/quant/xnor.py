"""XNOR-Net (Rastegari, Ordonez, Redmon, Farhadi, ECCV 2016).

Weights: W ~ alpha * sign(W) per output channel with alpha = mean|W| (the L1 norm over the
C_in*k*k filter divided by n). Activations: sign(x), optionally rescaled by the paper's K map
(``act_scale=K``; off by default, as in the official Torch code and most reproductions: the
following BatchNorm absorbs the scale).

Linear layers (:class:`XnorLinear`, the paper treats a fully connected layer as a convolution
whose filter covers the whole input): W ~ alpha * sign(W) with alpha = mean|W| per output row;
``act_scale=K`` is then the per-token mean|x| over the input features (K's window is the whole
token); ``center_weights=true`` binarizes each row after subtracting its mean, as BiBench's
``XNORLinear`` does (htqin/BiBench ``bibench/models/layers/xnor.py``). The bias stays full
precision, added after the binary matmul; activations and weights are the only binarized tensors.

BiBench's reading (``XNORConv2d``, htqin/BiBench@5a04a6d ``bibench/models/layers/xnor.py``) is
``act_scale=sample_mean act_grad=straight weight_grad=unscaled``: x_q = beta_n sign(x) with one
detached beta_n = mean|x_n| per sample, gradient g * 1{|x| <= 1} without beta; W_q = alpha_c
sign(W) with alpha_c detached, gradient g * 1{|W| <= 1} without alpha. Checked against that
layer (same weights and inputs, float64, no value at |.| = 1 where BiBench's clamp blocks the
edge and binexp passes it): output, dL/dx, dL/dW agree to 1e-15 (tests/unit/test_xnor.py).
BiBench's ``XNORLinear`` is another reading: ``center_weights=true weight_grad=detached
act_scale=sample_mean`` (beta per token, act_grad=scaled: sign first, then times both detached
scales, so both stay in the gradient) - checked the same way, to 1e-15.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from binexp.quant.layers import ConvSpec, LinearSpec, QuantConv2d, QuantLayer, QuantLinear
from binexp.quant.registry import check_choice, register_linear, register_quantizer
from binexp.quant.sign import SurrogateParams, make_surrogate, sign_pm1, surrogate_names

WEIGHT_GRADS = ("exact", "paper", "detached", "unscaled")
ACT_SCALES = ("none", "K", "sample_mean")
ACT_GRADS = ("scaled", "straight")


@dataclass
class XnorConfig:
    """``quantizer=xnor`` (conf/quantizer/xnor.yaml states only what differs)."""

    name: str = "xnor"
    binary_activations: bool = True
    # surrogates for sign(W) and sign(x) (any of `binexp list surrogate`); the paper uses the clipped STE for both
    weight_surrogate: str = "clipped_ste"
    act_surrogate: str = "clipped_ste"
    surrogate_params: SurrogateParams = field(default_factory=SurrogateParams)
    # exact: autograd through alpha (the coupled term jiecaoyu's correction derives);
    # paper: the paper's printed rule g * (1/n + alpha * F'(W)); detached: g * alpha * F'(W);
    # unscaled: g * F'(W), no alpha (BiBench)
    weight_grad: str = "exact"
    # none | K (the paper's per-position activation scale; per token in a linear layer) | sample_mean
    # (BiBench: one detached beta_n = mean|x_n| per sample - per token in a linear layer - x_q = beta_n sign(x))
    act_scale: str = "none"
    # with act_scale=sample_mean, dL/dx = beta_n F'(x) g (scaled) or F'(x) g (straight, BiBench)
    act_grad: str = "scaled"
    # binarize W - mean(W) per output channel / row (BiBench's XNORLinear); false: W itself (the paper)
    center_weights: bool = False

    def __post_init__(self) -> None:
        check_choice("weight_grad", self.weight_grad, WEIGHT_GRADS)
        check_choice("act_scale", self.act_scale, ACT_SCALES)
        check_choice("act_grad", self.act_grad, ACT_GRADS)
        if self.act_grad == "straight" and self.act_scale != "sample_mean":
            raise ValueError(
                f"quantizer.act_grad=straight applies to act_scale=sample_mean only (got act_scale={self.act_scale}); "
                "fix: quantizer.act_scale=sample_mean, or leave act_grad=scaled"
            )
        check_choice("weight_surrogate", self.weight_surrogate, surrogate_names())
        check_choice("act_surrogate", self.act_surrogate, surrogate_names())


class _PaperXnorWeight(torch.autograd.Function):
    """Forward alpha*sign(W); backward the XNOR-Net paper's element-wise rule
    dL/dW_i = dL/dWb_i * (1/n + alpha * F'(W_i))."""

    @staticmethod
    def forward(ctx, w: Tensor, surrogate) -> Tensor:
        alpha = w.abs().mean(dim=tuple(range(1, w.dim())), keepdim=True)
        ctx.save_for_backward(w, alpha)
        ctx.surrogate = surrogate
        return alpha * sign_pm1(w)

    @staticmethod
    def backward(ctx, grad: Tensor):
        w, alpha = ctx.saved_tensors
        n = w[0].numel()
        return grad * (1.0 / n + alpha * ctx.surrogate.derivative(w)), None


class XnorBinary(QuantLayer):
    """XNOR-Net binarization, whatever the geometry (:class:`XnorConv2d`, :class:`XnorLinear`).

    Forward: y = conv(sign(x), alpha * sign(W)) [* K] (a matmul for a linear layer), sign(0) =
    +1, alpha = mean|W| per output channel (row), K = box-filtered channel mean of |x| when
    ``act_scale=K`` (per-token mean|x| in a linear layer); with ``center_weights`` W is replaced
    by W - mean(W) per output channel first.
    Backward (defaults): clipped STE, dL/dx = g * 1{|x| <= 1}; for the weight, autograd through
    alpha*sign(W): dL/dW_i = alpha * F'(W_i) g_i + sign(W_i)/n * sum_j g_j sign(W_j)
    (``weight_grad=exact``), or the paper's printed g_i (1/n + alpha F'(W_i)) (``paper``), or
    alpha F'(W_i) g_i with alpha treated as a constant (``detached``), or F'(W_i) g_i
    (``unscaled``, BiBench). ``act_scale=sample_mean``: x_q = beta_n sign(x), beta_n = mean|x_n|
    per sample (per token in a linear layer; detached), dL/dx = beta_n F'(x) g
    (``act_grad=scaled``) or F'(x) g (``straight``).
    Paper: Rastegari et al., "XNOR-Net", ECCV 2016, arXiv 1603.05279, Sec. 3.1-3.2."""

    def __init__(self, cfg: XnorConfig, *geometry, **kw) -> None:
        super().__init__(*geometry, **kw)
        self.weight_grad = cfg.weight_grad
        self.act_scale = cfg.act_scale
        self.center_weights = cfg.center_weights
        self.act_grad = cfg.act_grad
        self._make_latent_weight()
        self.weight_sign = make_surrogate(cfg.weight_surrogate, "weight", cfg.surrogate_params)
        self.act_sign = (
            make_surrogate(cfg.act_surrogate, "activation", cfg.surrogate_params) if cfg.binary_activations else None
        )

    def latent_weight(self) -> Tensor:
        """W, or W - mean(W) per output channel with ``center_weights``: the tensor whose sign is used."""
        w = self.weight
        return w - w.mean(dim=self.weight_dims, keepdim=True) if self.center_weights else w

    def alpha(self) -> Tensor:
        return self.latent_weight().abs().mean(dim=self.weight_dims, keepdim=True)

    def quantized_weight(self) -> Tensor:
        w = self.latent_weight()
        if self.weight_grad == "paper":
            return _PaperXnorWeight.apply(w, self.weight_sign)
        alpha = w.abs().mean(dim=self.weight_dims, keepdim=True)
        if self.weight_grad == "detached":
            alpha = alpha.detach()
        elif self.weight_grad == "unscaled":
            s = self.weight_sign(w)  # value sign(W), gradient F'(W) * g
            return alpha.detach() * s.detach() + (s - s.detach())  # value alpha*sign(W) exactly
        return alpha * self.weight_sign(w)

    def quantize_input(self, x: Tensor) -> Tensor:
        if self.act_sign is None:
            return x
        s = self.act_sign(x)
        if self.act_scale != "sample_mean":
            return s
        beta = x.detach().abs().mean(dim=self.input_dims, keepdim=True)
        if self.act_grad == "straight":
            return beta * s.detach() + (s - s.detach())  # value beta*sign(x), gradient F'(x) * g
        return beta * s


class XnorConv2d(XnorBinary, QuantConv2d):
    """XNOR-Net binary convolution (the rule of :class:`XnorBinary`)."""

    def __init__(
        self, cfg: XnorConfig, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0
    ) -> None:
        super().__init__(cfg, in_channels, out_channels, kernel_size, stride, padding)

    def scale_output(self, out: Tensor, x: Tensor) -> Tensor:
        if self.act_scale != "K":
            return out
        a = x.abs().mean(dim=1, keepdim=True)
        k = F.avg_pool2d(a, self.kernel_size, self.stride, self.padding, count_include_pad=True)
        return out * k


class XnorLinear(XnorBinary, QuantLinear):
    """XNOR-Net binary linear layer: y = (sign(x) @ (alpha * sign(W))^T) [* K] + b, alpha per
    row, K = mean|x| over the token's input features (``act_scale=K``), b full precision."""

    def __init__(self, cfg: XnorConfig, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__(cfg, in_features, out_features, bias)

    def scale_output(self, out: Tensor, x: Tensor) -> Tensor:
        return out * x.abs().mean(dim=-1, keepdim=True) if self.act_scale == "K" else out


@register_quantizer("xnor", XnorConfig, "XNOR-Net: sign with per-channel alpha=mean|W|, clipped STE")
def build_xnor_conv(cfg: XnorConfig, spec: ConvSpec) -> XnorConv2d:
    return XnorConv2d(cfg, spec.in_channels, spec.out_channels, spec.kernel_size, spec.stride, spec.padding)


@register_linear("xnor")
def build_xnor_linear(cfg: XnorConfig, spec: LinearSpec) -> XnorLinear:
    return XnorLinear(cfg, spec.in_features, spec.out_features, spec.bias)
