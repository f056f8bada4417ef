"""IR-Net (Qin, Gong, Liu, Shen, Wei, Yu, Song, CVPR 2020): Libra-PB weights and the EDE surrogate.

Forward, weights (Libra Parameter Binarization, as the official code computes it):

    w_s = (W - mean_c W) / std_c(W - mean_c W)     per output channel c, unbiased std,
    s_c = 2^round(log2(mean|w_s,c|))               per output channel, stop-gradient,
    W_q = s_c * sign(w_s).

Centring makes each filter's binary weights balanced (maximum information entropy), dividing by
the std makes the binarization insensitive to the filter's magnitude; s_c is a power of two (a
bit shift at inference). After standardisation mean|w_s| is about 0.8 for dense filters, so
s_c = 1 almost always; s_c = 1/2 needs a sparse filter (a 3x3 filter [1, 0, ..., 0] gives
mean|w_s| = 0.593, log2 = -0.755, s = 0.5). ``shift_scale=false`` drops s_c (s = 1).

Forward, activations: sign(x), sign(0) = +1 (the official code does not standardise them).

Backward: the Error Decay Estimator (surrogate ``ede``) for both, F'(u) = k t (1 - tanh^2(t u)),
t = T_min (T_max / T_min)^(e/E), k = max(1/t, 1) at epoch e of E; for the weights it applies to
w_s and autograd carries it through the standardisation (mean and std are not detached).
IR-Net's code uses T_min = 0.1 (VGG-small, W1/A32 ResNet-20: this quantizer's default) or 1e-3
(W1/A1 ResNet-20: the ``irnet_cifar_resnet20`` preset), T_max = 10.

Checked against the official layer (htqin/IR-Net@f63a590 ``CIFAR-10/ResNet20/1w1a/modules/
ir_1w1a.py:IRConv2d`` with ``binaryfunction.py:BinaryQuantize``, run on CPU in float64 with the
same weights, inputs and (k, t)): output, dL/dx and dL/dW agree to 1e-13 at three points of the
schedule (tests/unit/test_irnet.py::test_matches_official_golden).

Paper: Qin et al., "Forward and Backward Information Retention for Accurate Binary Neural
Networks", CVPR 2020, arXiv:1909.10788 (Libra-PB and EDE).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor

from binexp.quant.layers import ConvSpec, LinearSpec, QuantConv2d, QuantLayer, QuantLinear, Storage
from binexp.quant.rbnn import standardize
from binexp.quant.registry import check_choice, register_linear, register_quantizer
from binexp.quant.sign import SurrogateParams, make_surrogate, surrogate_names


@dataclass
class IrnetConfig:
    name: str = "irnet"
    # Libra-PB: per-output-channel (W - mean) / std before the sign; false binarizes W itself
    weight_standardize: bool = True
    # s_c = 2^round(log2(mean|w_s|)) per output channel; false: s = 1
    shift_scale: bool = True
    # false: real-valued conv input (W1/A32, IR-Net's 1w32a code)
    binary_activations: bool = True
    # backward of sign(w_s) and sign(x); any `binexp list surrogate`
    weight_surrogate: str = "ede"
    act_surrogate: str = "ede"
    # EDE's T_min, T_max: IR-Net's VGG-small / W1A32 code (the W1A1 ResNet-20 code: t_min 1e-3)
    surrogate_params: SurrogateParams = field(default_factory=lambda: SurrogateParams(t_min=0.1, t_max=10.0))

    def __post_init__(self) -> None:
        check_choice("weight_surrogate", self.weight_surrogate, surrogate_names())
        check_choice("act_surrogate", self.act_surrogate, surrogate_names())


class IrnetBinary(QuantLayer):
    """IR-Net binarization, whatever the geometry (:class:`IrnetConv2d`, :class:`IrnetLinear`):
    y = conv(sign(x), s * sign(w_s)) (module docstring), EDE backward; in a linear layer w_s and s
    are per output row and the full-precision bias is added after the matmul (IR-Net binarizes
    only convolutions; the row-wise reading is binexp's extension).

    Paper: Qin et al., arXiv:1909.10788."""

    def __init__(self, cfg: IrnetConfig, *geometry, **kw) -> None:
        super().__init__(*geometry, **kw)
        self.weight_standardize = cfg.weight_standardize
        self.shift_scale = cfg.shift_scale
        self._make_latent_weight()
        self.weight_sign = make_surrogate(cfg.weight_surrogate, "weight", cfg.surrogate_params)
        self.act_sign = (
            make_surrogate(cfg.act_surrogate, "activation", cfg.surrogate_params) if cfg.binary_activations else None
        )

    def latent_weight(self) -> Tensor:
        """w_s, the standardised weight whose sign is the binary weight."""
        return standardize(self.weight, self.weight_dims) if self.weight_standardize else self.weight

    def shift(self, ws: Tensor) -> Tensor:
        """s_c = 2^round(log2(mean|w_s,c|)), (C_out, 1, 1, 1), detached (as the code: log / log 2)."""
        m = ws.detach().abs().mean(dim=self.weight_dims, keepdim=True)
        return torch.pow(2.0, torch.round(torch.log(m) / math.log(2))).to(ws.dtype)

    def quantized_weight(self) -> Tensor:
        ws = self.latent_weight()
        b = self.weight_sign(ws)
        return b * self.shift(ws) if self.shift_scale else b

    def quantize_input(self, x: Tensor) -> Tensor:
        return self.act_sign(x) if self.act_sign is not None else x

    def penalty_weight(self) -> Tensor | None:
        return self.latent_weight()

    def extra_stats(self) -> dict[str, Tensor]:
        """Mean over output channels of the shift scale s (1 unless filters are sparse)."""
        if not self.shift_scale:
            return {}
        with torch.no_grad():
            return {"irnet_shift": self.shift(self.latent_weight()).mean()}

    def storage(self) -> Storage:
        """1 bit per weight and, with ``shift_scale``, one power of two per output channel."""
        return Storage(
            self.num_weights, self.num_weights, inference_floats=self.out_channels if self.shift_scale else 0
        )

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, libra_pb={self.weight_standardize}, shift_scale={self.shift_scale}"


class IrnetConv2d(IrnetBinary, QuantConv2d):
    """IR-Net convolution (the rule of :class:`IrnetBinary`)."""

    def __init__(self, cfg: IrnetConfig, spec: ConvSpec) -> None:
        super().__init__(cfg, spec.in_channels, spec.out_channels, spec.kernel_size, spec.stride, spec.padding)


class IrnetLinear(IrnetBinary, QuantLinear):
    """IR-Net linear layer, bias full precision (the rule of :class:`IrnetBinary`)."""

    def __init__(self, cfg: IrnetConfig, spec: LinearSpec) -> None:
        super().__init__(cfg, spec.in_features, spec.out_features, spec.bias)


@register_quantizer("irnet", IrnetConfig, "IR-Net: Libra-PB standardised weights, power-of-two scale, EDE surrogate")
def build_irnet_conv(cfg: IrnetConfig, spec: ConvSpec) -> IrnetConv2d:
    return IrnetConv2d(cfg, spec)


@register_linear("irnet")
def build_irnet_linear(cfg: IrnetConfig, spec: LinearSpec) -> IrnetLinear:
    return IrnetLinear(cfg, spec)
