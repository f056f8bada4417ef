"""XNOR-Net++ (Bulat & Tzimiropoulos, BMVC 2019): one learned scale on the binary conv's output.

XNOR-Net computes a weight scale alpha and an activation scale from the data; XNOR-Net++ replaces
both by one scaling tensor Gamma multiplying the binary convolution, learned by backpropagation
and factorised over the output's dimensions, Gamma = o (x) h (x) w:

    y = conv(sign(x), sign(W)) * o[c] * h[i] * w[j],   sign(0) = +1,

o in R^{C_out}, h in R^{H_out}, w in R^{W_out}, all initialised to 1 (``scales`` picks the
factors: [channel] alone is the single per-channel factor, the three together the fully
factorised form). The spatial factors are vectors of length ``max_spatial`` sliced to the
output's height and width at each call (BiBench's ``XNORPlusPlusConv2d``: 2000, so any input
size fits). Backward: clipped STE for both signs, dL/dW = g * 1{|W| <= 1}, dL/dx = g * 1{|x| <= 1};
the factors get their exact gradient by autograd.

``weight_scale=mean_abs_centered`` adds the analytic weight scale of the first author's library
(1adrianb/binary-networks-pytorch ``bnn/ops.py:XNORWeightBinarizer`` with ``compute_alpha=True,
center_weights=True``): C = W - mean over the input channels (dim 1, at each kernel position),
W_b = alpha_c sign(C), alpha_c = mean|C| per output channel, differentiated through (not
detached), on top of Gamma. Default ``none`` (the paper's Gamma alone, as BiBench).

Checked against BiBench's ``XNORPlusPlusConv2d`` (htqin/BiBench@5a04a6d
``bibench/models/layers/xnorplusplus.py``; same weights, scales and inputs, float64, no input or
weight at |.| = 1 where BiBench's clamp blocks the edge and binexp passes it): output, dL/dx,
dL/dW, dL/do, dL/dh, dL/dw agree to 1e-15; the linear rule (:class:`XnorPPLinear`, o per output
feature only) against ``XNORPlusPlusLinear`` the same way (tests/unit/test_xnorpp.py).

Paper: Bulat & Tzimiropoulos, "XNOR-Net++: Improved Binary Neural Networks", BMVC 2019,
arXiv:1909.13863.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from binexp.quant.layers import ConvSpec, LinearSpec, QuantConv2d, QuantLayer, QuantLinear, Storage
from binexp.quant.registry import check_choice, register_linear, register_quantizer
from binexp.quant.sign import SurrogateParams, make_surrogate, surrogate_names

SCALES = ("channel", "height", "width")
WEIGHT_SCALES = ("none", "mean_abs_centered")


@dataclass
class XnorPPConfig:
    name: str = "xnorpp"
    # factors of Gamma: any non-empty subset of channel, height, width (BiBench: all three)
    scales: list[str] = field(default_factory=lambda: list(SCALES))
    # length of the height and width factors, sliced to the output size (BiBench: 2000)
    max_spatial: int = 2000
    # none: Gamma only | mean_abs_centered: also alpha_c = mean|C|, C = W - mean over dim 1 (author's library)
    weight_scale: str = "none"
    # false: real-valued conv input (W1/A32)
    binary_activations: bool = True
    weight_surrogate: str = "clipped_ste"
    act_surrogate: str = "clipped_ste"
    surrogate_params: SurrogateParams = field(default_factory=SurrogateParams)

    def __post_init__(self) -> None:
        if not self.scales:
            raise ValueError("quantizer.scales is empty; choose a non-empty subset of: " + ", ".join(SCALES))
        for s in self.scales:
            check_choice("scales", s, SCALES)
        if len(set(self.scales)) != len(self.scales):
            raise ValueError(f"quantizer.scales={list(self.scales)} repeats a factor; list each at most once")
        if self.max_spatial < 1:
            raise ValueError(f"quantizer.max_spatial must be >= 1, got {self.max_spatial}")
        check_choice("weight_scale", self.weight_scale, WEIGHT_SCALES)
        check_choice("weight_surrogate", self.weight_surrogate, surrogate_names())
        check_choice("act_surrogate", self.act_surrogate, surrogate_names())


class XnorPPBinary(QuantLayer):
    """XNOR-Net++ binarization, whatever the geometry (:class:`XnorPPConv2d`, :class:`XnorPPLinear`):
    sign(x), [alpha] sign(W), clipped STE; the learned output scale is the geometry's.

    Paper: Bulat & Tzimiropoulos, arXiv:1909.13863."""

    o_scale: nn.Parameter | None

    def __init__(self, cfg: XnorPPConfig, *geometry, **kw) -> None:
        super().__init__(*geometry, **kw)
        self.weight_scale = cfg.weight_scale
        self._make_latent_weight()
        self.weight_sign = make_surrogate(cfg.weight_surrogate, "weight", cfg.surrogate_params)
        self.act_sign = (
            make_surrogate(cfg.act_surrogate, "activation", cfg.surrogate_params) if cfg.binary_activations else None
        )

    def quantized_weight(self) -> Tensor:
        w = self.weight
        if self.weight_scale == "none":
            return self.weight_sign(w)
        c = w - w.mean(dim=1, keepdim=True)  # the library centres over dim 1 only
        return c.abs().mean(dim=self.weight_dims, keepdim=True) * self.weight_sign(c)

    def quantize_input(self, x: Tensor) -> Tensor:
        return self.act_sign(x) if self.act_sign is not None else x

    def extra_stats(self) -> dict[str, Tensor]:
        """Mean of the channel factor o (the learned per-channel scale)."""
        return {"xnorpp_o": self.o_scale.detach().mean()} if self.o_scale is not None else {}


class XnorPPConv2d(XnorPPBinary, QuantConv2d):
    """XNOR-Net++ convolution: y = conv(sign(x), [alpha] sign(W)) * o * h[:H] * w[:W] (module docstring)."""

    def __init__(self, cfg: XnorPPConfig, spec: ConvSpec) -> None:
        super().__init__(cfg, spec.in_channels, spec.out_channels, spec.kernel_size, spec.stride, spec.padding)
        self.max_spatial = cfg.max_spatial
        scales = set(cfg.scales)
        self.o_scale = nn.Parameter(torch.ones(1, spec.out_channels, 1, 1)) if "channel" in scales else None
        self.h_scale = nn.Parameter(torch.ones(1, 1, cfg.max_spatial, 1)) if "height" in scales else None
        self.w_scale = nn.Parameter(torch.ones(1, 1, 1, cfg.max_spatial)) if "width" in scales else None
        self._out_hw: tuple[int, int] | None = None  # the output size seen last (storage counts it)

    def scale_output(self, out: Tensor, x: Tensor) -> Tensor:
        h, w = out.shape[-2], out.shape[-1]
        if max(h, w) > self.max_spatial and (self.h_scale is not None or self.w_scale is not None):
            raise ValueError(
                f"xnorpp: output {h}x{w} is larger than quantizer.max_spatial={self.max_spatial}; raise it"
            )
        if not torch.compiler.is_compiling():
            self._out_hw = (h, w)
        if self.o_scale is not None:
            out = out * self.o_scale
        if self.h_scale is not None:
            out = out * self.h_scale[:, :, :h, :]
        if self.w_scale is not None:
            out = out * self.w_scale[:, :, :, :w]
        return out

    def storage(self) -> Storage:
        """1 bit per weight; inference floats: the factors' entries the layer uses (C_out, and
        H_out + W_out of the last output seen; foldable into the next BatchNorm only when Gamma
        is per channel) plus C_out for alpha; training-only: the unused tail of h and w."""
        hw = self._out_hw or (self.max_spatial, self.max_spatial)
        used = 0
        unused = 0
        if self.o_scale is not None:
            used += self.out_channels
        if self.h_scale is not None:
            used += hw[0]
            unused += self.max_spatial - hw[0]
        if self.w_scale is not None:
            used += hw[1]
            unused += self.max_spatial - hw[1]
        if self.weight_scale != "none":
            used += self.out_channels
        training = {"xnorpp_unused_spatial": unused} if unused else {}
        return Storage(self.num_weights, self.num_weights, inference_floats=used, training_floats=training)

    def extra_repr(self) -> str:
        names = [n for n, p in (("o", self.o_scale), ("h", self.h_scale), ("w", self.w_scale)) if p is not None]
        return f"{super().extra_repr()}, gamma={'*'.join(names)}, weight_scale={self.weight_scale}"


class XnorPPLinear(XnorPPBinary, QuantLinear):
    """XNOR-Net++ linear layer: y = (sign(x) @ [alpha] sign(W)^T) * o + b, o per output feature
    (init 1) when ``channel`` is among ``scales`` (the height and width factors have no linear
    counterpart), b full precision - BiBench's ``XNORPlusPlusLinear``."""

    def __init__(self, cfg: XnorPPConfig, spec: LinearSpec) -> None:
        super().__init__(cfg, spec.in_features, spec.out_features, spec.bias)
        self.o_scale = nn.Parameter(torch.ones(spec.out_features)) if "channel" in cfg.scales else None

    def scale_output(self, out: Tensor, x: Tensor) -> Tensor:
        return out * self.o_scale if self.o_scale is not None else out

    def storage(self) -> Storage:
        """1 bit per weight; inference floats: o (out) and alpha (out) where used."""
        floats = (self.out_features if self.o_scale is not None else 0) + (
            self.out_features if self.weight_scale != "none" else 0
        )
        return Storage(self.num_weights, self.num_weights, inference_floats=floats)


@register_quantizer("xnorpp", XnorPPConfig, "XNOR-Net++: sign(W), sign(x), learned output scale o*h*w, clipped STE")
def build_xnorpp_conv(cfg: XnorPPConfig, spec: ConvSpec) -> XnorPPConv2d:
    return XnorPPConv2d(cfg, spec)


@register_linear("xnorpp")
def build_xnorpp_linear(cfg: XnorPPConfig, spec: LinearSpec) -> XnorPPLinear:
    return XnorPPLinear(cfg, spec)
