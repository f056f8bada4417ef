"""LSQ, Learned Step Size Quantization (Esser, McKinstry, Bablani, Appuswamy, Modha 2019): k-bit
weights with one learned step size s per layer; activations stay real (W{k}/A32, the multi-bit
baseline of FleXOR's q sweep).

Forward (Eq. 1-2), signed weights of ``weight_bits`` = b bits, Q_N = 2^(b-1), Q_P = 2^(b-1) - 1:

    w_q = round(clip(w / s, -Q_N, Q_P)) * s

(rounding half to even, ``torch.round``; the paper writes round-to-nearest and leaves ties open).

Backward: straight through the rounding for w (Eq. 4),

    dL/dw = g * 1{-Q_N < w/s < Q_P},

and the step-size gradient of Eq. 3, summed over the layer's weights,

    dL/ds = gscale * sum g * ( -w/s + round(w/s)   if -Q_N < w/s < Q_P
                               -Q_N                if w/s <= -Q_N
                               Q_P                 if w/s >= Q_P ),

with the gradient scale of Sec. 2.2, gscale = 1/sqrt(N_W * Q_P), N_W the layer's number of
weights (``grad_scale=n_qp``; the paper's gradient-scale ablation: ``n``: 1/sqrt(N_W), ``none``: 1).
The comparisons are strict as in Eq. 3-4: a weight exactly on a clip boundary gets no w gradient
and gives s the boundary value (autograd through the appendix's ``clamp`` would pass it to w and
give s 0 there; the two agree everywhere else).

Init (Sec. 2.1): s = 2 mean|w| / sqrt(Q_P), computed from the latent weight at construction and
again whenever the architecture re-initialises it (``reset_latent_weight``). The paper starts
from a trained full-precision network; with ``init_from=<fp run>`` the step keeps its value from
the random init (re-deriving it from the loaded weights is not built). LSQ's activation quantizer
(unsigned, data-initialised step) is not built either. The authors released no code; this follows
the paper's equations and its appendix pseudocode (``grad_scale``, ``round_pass``), which
tests/unit/test_lsq.py checks against away from the boundaries.

Paper: Esser et al., "Learned Step Size Quantization", ICLR 2020, arXiv:1902.08153.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from binexp.quant.layers import ConvSpec, LinearSpec, QuantConv2d, QuantLayer, QuantLinear, Storage
from binexp.quant.registry import check_choice, register_linear, register_quantizer

GRAD_SCALES = ("n_qp", "n", "none")
MIN_BITS, MAX_BITS = 2, 8


@dataclass
class LsqConfig:
    name: str = "lsq"
    # bits per weight, signed levels -2^(b-1) .. 2^(b-1) - 1 times the step (2 to 8)
    weight_bits: int = 2
    # the step-size gradient's scale: n_qp: 1/sqrt(N_W Q_P) (the paper), n: 1/sqrt(N_W), none: 1
    grad_scale: str = "n_qp"

    def __post_init__(self) -> None:
        check_choice("grad_scale", self.grad_scale, GRAD_SCALES)
        if not MIN_BITS <= self.weight_bits <= MAX_BITS:
            raise ValueError(
                f"quantizer.weight_bits={self.weight_bits} is not valid; choose {MIN_BITS} to {MAX_BITS}"
                " (1-bit weights: quantizer=xnor)"
            )


class _LsqQuantize(torch.autograd.Function):
    """round(clip(w/s, -qn, qp)) * s with Eq. 3-4's gradients (strict boundaries), s's gradient
    times ``gscale``."""

    @staticmethod
    def forward(ctx, w: Tensor, s: Tensor, qn: float, qp: float, gscale: float) -> Tensor:
        r = w / s
        ctx.save_for_backward(r)
        ctx.qn, ctx.qp, ctx.gscale = qn, qp, gscale
        return torch.round(r.clamp(-qn, qp)) * s

    @staticmethod
    def backward(ctx, grad: Tensor):
        (r,) = ctx.saved_tensors
        qn, qp = ctx.qn, ctx.qp
        low, high = r <= -qn, r >= qp
        inside = ~(low | high)
        grad_w = grad * inside.to(grad.dtype)
        ds = torch.where(low, -qn, torch.where(high, qp, torch.round(r) - r))
        grad_s = (grad * ds).sum() * ctx.gscale
        return grad_w, grad_s, None, None, None


class LsqBinary(QuantLayer):
    """LSQ weights, whatever the geometry (:class:`LsqConv2d`, :class:`LsqLinear`): y = conv(x,
    w_q), the rule of the module docstring; ``step`` is the layer's learned s (a parameter, so it
    trains, moves with ``.to()`` and is checkpointed). Paper: Esser et al., arXiv:1902.08153."""

    def __init__(self, cfg: LsqConfig, *geometry, **kw) -> None:
        super().__init__(*geometry, **kw)
        self.weight_bits = cfg.weight_bits
        self.qn = float(2 ** (cfg.weight_bits - 1))
        self.qp = float(2 ** (cfg.weight_bits - 1) - 1)
        self._make_latent_weight()
        n = self.num_weights
        self.gscale = {"n_qp": 1.0 / math.sqrt(n * self.qp), "n": 1.0 / math.sqrt(n), "none": 1.0}[cfg.grad_scale]
        self.step = nn.Parameter(torch.empty(()))
        self.init_step()

    @torch.no_grad()
    def init_step(self) -> None:
        """s = 2 mean|w| / sqrt(Q_P) (Sec. 2.1)."""
        self.step.copy_(2 * self.weight.abs().mean() / math.sqrt(self.qp))

    def reset_latent_weight(self, init_fn) -> None:
        super().reset_latent_weight(init_fn)
        self.init_step()

    def quantized_weight(self) -> Tensor:
        return _LsqQuantize.apply(self.weight, self.step, self.qn, self.qp, self.gscale)

    def penalty_weight(self) -> Tensor | None:
        return None  # k-bit levels: no sign whose angle a penalty could shrink

    def extra_stats(self) -> dict[str, Tensor]:
        return {"lsq_step": self.step.detach().clone()}

    def storage(self) -> Storage:
        """weight_bits per weight and the one step size."""
        return Storage(weights=self.num_weights, weight_bits=self.weight_bits * self.num_weights, inference_floats=1)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, W{self.weight_bits}/A32"


class LsqConv2d(LsqBinary, QuantConv2d):
    """LSQ convolution (the rule of :class:`LsqBinary`)."""

    def __init__(self, cfg: LsqConfig, spec: ConvSpec) -> None:
        super().__init__(cfg, spec.in_channels, spec.out_channels, spec.kernel_size, spec.stride, spec.padding)


class LsqLinear(LsqBinary, QuantLinear):
    """LSQ linear layer, bias full precision (the rule of :class:`LsqBinary`)."""

    def __init__(self, cfg: LsqConfig, spec: LinearSpec) -> None:
        super().__init__(cfg, spec.in_features, spec.out_features, spec.bias)


@register_quantizer("lsq", LsqConfig, "LSQ: k-bit weights with a learned step size per layer, real activations")
def build_lsq_conv(cfg: LsqConfig, spec: ConvSpec) -> LsqConv2d:
    return LsqConv2d(cfg, spec)


@register_linear("lsq")
def build_lsq_linear(cfg: LsqConfig, spec: LinearSpec) -> LsqLinear:
    return LsqLinear(cfg, spec)
