"""ReCU, the rectified clamp unit (Xu et al., ICCV 2021, arXiv:2103.12369).

Weights are standardised per output channel and clamped at the tau-quantile of a Laplace
distribution before the sign, so "dead" weights far out in the tails get no gradient that would
keep them there; tau rises from tau_min to tau_max over training. The output is scaled by a
learnable per-channel alpha instead of an analytic one. Activations are divided by their
per-sample standard deviation during training.

Defaults are the official code (z-hXu/ReCU, ``cifar/modules/binarized_modules.py``:
``BinarizeConv2d``, ``BinaryQuantize``, ``BinaryQuantize_a``; ``cifar/main.py:cpt_tau``),
which BiBench's ``ReCUConv2d`` repeats.

Fidelity: ``ReCUConv2d`` was compared in float64 with the official ``BinarizeConv2d`` on the
same weights, alpha, tau and inputs, in training and in evaluation mode: output, dL/dx, dL/dW and
dL/dalpha agree to 1e-12 (tests/unit/test_recu.py holds the official code's values as golden
numbers); the tau schedule agrees with ``cpt_tau`` to float32 precision (the official code
computes it in float32).

Linear layers (:class:`ReCULinear`, for ``model=vit_cifar``): BiBench's ``ReCULinear`` (the official
code binarizes convolutions only); compared the same way in float64 with BiBench's layer at tau(0),
tau(E/2), tau(E) and in evaluation: output, dL/dx, dL/dW, dL/dbias and dL/dalpha agree to 1e-13
(tests/unit/test_recu.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from binexp.quant.layers import ConvSpec, LinearSpec, QuantConv2d, QuantLayer, QuantLinear, Storage
from binexp.quant.registry import check_choice, register_linear, register_quantizer
from binexp.quant.sign import SurrogateParams, make_surrogate, surrogate_names

ACT_NORMS = ("train_only", "always", "off")
ALPHA_INITS = ("uniform", "ones")


def recu_tau(epoch: int, max_epochs: int, tau_min: float, tau_max: float) -> float:
    """ReCU's tau at epoch e of E (official ``cpt_tau``): A exp(e/E) + B with
    A = (tau_max - tau_min) / (e - 1), B = tau_min - A, so tau(0) = tau_min and tau(E) = tau_max."""
    a = (tau_max - tau_min) / (math.e - 1.0)
    return a * math.exp(epoch / max(max_epochs, 1)) + tau_min - a


@dataclass
class ReCUConfig:
    name: str = "recu"
    tau_min: float = 0.85  # tau at epoch 0 (official --tau_min)
    tau_max: float = 0.99  # tau approached at the last epoch (official --tau_max)
    eps: float = 1e-5  # added to the variances before the square root
    # activations a / sqrt(var_{C,H,W}(a) + eps) per sample (unbiased, no mean subtracted):
    # train_only (official: evaluation binarizes a itself) | always | off
    act_norm: str = "train_only"
    alpha_init: str = "uniform"  # the output scale: uniform = U[0, 1) (official torch.rand) | ones
    binary_activations: bool = True
    # sign(w2) passes its gradient straight through (official BinaryQuantize); the clamp gates it
    weight_surrogate: str = "ste"
    act_surrogate: str = "approx_sign"  # official BinaryQuantize_a: max(0, 2 - 2|a0|)
    surrogate_params: SurrogateParams = field(default_factory=SurrogateParams)

    def __post_init__(self) -> None:
        check_choice("act_norm", self.act_norm, ACT_NORMS)
        check_choice("alpha_init", self.alpha_init, ALPHA_INITS)
        check_choice("weight_surrogate", self.weight_surrogate, surrogate_names())
        check_choice("act_surrogate", self.act_surrogate, surrogate_names())
        if not 0 < self.tau_min <= self.tau_max <= 1:
            raise ValueError(
                f"quantizer.tau_min={self.tau_min}, tau_max={self.tau_max}: need 0 < tau_min <= tau_max <= 1 "
                f"(tau is a quantile); fix: e.g. tau_min=0.85 tau_max=0.99"
            )
        if not self.eps > 0:
            raise ValueError(f"quantizer.eps must be > 0, got {self.eps}")


class ReCUBinary(QuantLayer):
    """ReCU binarization, whatever the geometry (:class:`ReCUConv2d`, :class:`ReCULinear`).

    Forward, weights: w0 = W - mean_c(W); w1 = w0 / (sqrt(var_c(w0) + eps) / (2 sqrt2)) (per output
    channel, unbiased variance: per-channel std 2 sqrt2); Q = -mean|w1| ln(2 - 2 tau) (mean over
    the whole layer: the tau-quantile of a Laplace(0, mean|w1|), detached); W_b = sign(clamp(w1,
    -Q, Q)). Activations (training): x_b = sign(a / sqrt(var(a) + eps)) per sample (over C, H, W of
    a conv input, over the features of a token); evaluation: sign(a). Output: conv(x_b, W_b) * alpha
    (or x_b W_b^T * alpha, then the full-precision bias), alpha learnable per output channel.
    Backward: weights straight through the sign, zero where |w1| > Q (the clamp), then through
    the standardisation by autograd; activations max(0, 2 - 2|a0|) times the 1/std factor (and
    its autograd term). tau = 1 (before the first epoch hook) gives Q = +inf: no clamp.
    Paper: Xu et al., "ReCU: Reviving the Dead Weights in Binary Neural Networks", ICCV 2021,
    arXiv:2103.12369."""

    tau: Tensor  # buffer: the current quantile

    def __init__(self, cfg: ReCUConfig, *geometry, **kw) -> None:
        super().__init__(*geometry, **kw)
        self.tau_min, self.tau_max, self.eps, self.act_norm = cfg.tau_min, cfg.tau_max, cfg.eps, cfg.act_norm
        self._make_latent_weight()
        init = torch.rand if cfg.alpha_init == "uniform" else torch.ones
        # (C_out, 1, 1) on a conv output (official), (C_out,) on a token's features (BiBench ReCULinear)
        self.alpha = nn.Parameter(init(self.out_channels, *([1] * (len(self.weight_dims) - 1))))
        self.register_buffer("tau", torch.tensor(1.0), persistent=False)
        self.weight_sign = make_surrogate(cfg.weight_surrogate, "weight", cfg.surrogate_params)
        self.act_sign = (
            make_surrogate(cfg.act_surrogate, "activation", cfg.surrogate_params) if cfg.binary_activations else None
        )

    def latent_weight(self) -> Tensor:
        """w1, the standardised weight whose sign is the binary weight."""
        w0 = self.weight - self.weight.mean(dim=self.weight_dims, keepdim=True)
        return w0 / (torch.sqrt(w0.var(dim=self.weight_dims, keepdim=True) + self.eps) / (2.0 * math.sqrt(2.0)))

    def clamp_bound(self, w1: Tensor) -> Tensor:
        """Q = -mean|w1| ln(2 - 2 tau), detached."""
        return (-w1.abs().mean() * torch.log(2.0 - 2.0 * self.tau.to(w1.dtype))).detach()

    def quantized_weight(self) -> Tensor:
        w1 = self.latent_weight()
        q = self.clamp_bound(w1)
        return self.weight_sign(torch.clamp(w1, -q, q))

    def act_latent(self, x: Tensor) -> Tensor | None:
        if self.act_sign is None:
            return None
        if self.act_norm == "always" or (self.act_norm == "train_only" and self.training):
            return x / torch.sqrt(x.var(dim=self.input_dims, keepdim=True) + self.eps)
        return x

    def quantize_input(self, x: Tensor) -> Tensor:
        latent = self.act_latent(x)
        return x if latent is None or self.act_sign is None else self.act_sign(latent)

    def scale_output(self, out: Tensor, x: Tensor) -> Tensor:
        return out * self.alpha

    @torch.no_grad()
    def epoch_start(self, epoch: int, max_epochs: int, lr_decays: int = 0) -> None:
        super().epoch_start(epoch, max_epochs, lr_decays)
        self.tau.fill_(recu_tau(epoch, max_epochs, self.tau_min, self.tau_max))

    def penalty_weight(self) -> Tensor | None:
        return self.latent_weight()

    def extra_stats(self) -> dict[str, Tensor]:
        """tau, and the share of weights the clamp holds (|w1| > Q: no gradient)."""
        with torch.no_grad():
            w1 = self.latent_weight()
            clamped = (w1.abs() > self.clamp_bound(w1)).float().mean()
        return {"recu_tau": self.tau.detach().clone(), "recu_clamped": clamped}

    def storage(self) -> Storage:
        """1 bit per weight and alpha (C_out floats) at inference."""
        return Storage(weights=self.num_weights, weight_bits=self.num_weights, inference_floats=self.out_channels)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, tau={float(self.tau):.4f}, act_norm={self.act_norm}"


class ReCUConv2d(ReCUBinary, QuantConv2d):
    """ReCU binary convolution (the rule of :class:`ReCUBinary`), as the official ``BinarizeConv2d``."""

    def __init__(self, cfg: ReCUConfig, spec: ConvSpec) -> None:
        super().__init__(cfg, spec.in_channels, spec.out_channels, spec.kernel_size, spec.stride, spec.padding)


class ReCULinear(ReCUBinary, QuantLinear):
    """ReCU binary linear layer (the rule of :class:`ReCUBinary`), as BiBench's ``ReCULinear``
    (htqin/BiBench ``bibench/models/layers/recu.py``): rows standardised over the input features,
    each token divided by its std over its features in training, alpha per output feature, the
    full-precision bias added after alpha."""

    def __init__(self, cfg: ReCUConfig, spec: LinearSpec) -> None:
        super().__init__(cfg, spec.in_features, spec.out_features, spec.bias)


@register_quantizer("recu", ReCUConfig, "ReCU: standardised weights clamped at a Laplace tau-quantile, learnable alpha")
def build_recu_conv(cfg: ReCUConfig, spec: ConvSpec) -> ReCUConv2d:
    return ReCUConv2d(cfg, spec)


@register_linear("recu")
def build_recu_linear(cfg: ReCUConfig, spec: LinearSpec) -> ReCULinear:
    return ReCULinear(cfg, spec)
