"""AdaBin, adaptive binary sets (Tu, Chen, Ren, Wang, ECCV 2022, arXiv:2208.08084).

Each layer binarizes to a set {b1, b2} given by a centre and a distance instead of {-1, +1}.
Weights: centre beta_w = the filter mean, distance alpha_w = the filter's population standard
deviation (equalisation; both carry gradients). Activations: a learnable centre beta_a and
distance alpha_a per layer (scalars), trained end to end.

Defaults are the official code (huawei-noah/Efficient-Computing, ``BinaryNetworks/AdaBin/cifar10/
utils/binarylib.py``: ``AdaBin_Conv2d``, ``BinaryActivation``, ``BinaryQuantize``; ``utils/utils.py:
Log_UP`` with T_min = 1e-3, T_max = 10, used by ``train.sh --progressive``). The official
activation output is alpha_a (b + beta_a): its levels alpha_a (beta_a -+ 1) are centred at
alpha_a beta_a while the threshold is beta_a. ``act_center=paper`` outputs alpha_a b + beta_a,
the set {beta_a - alpha_a, beta_a + alpha_a} (the centre/distance reading of the paper's
abstract; the paper's equation was not checked here).

Fidelity: ``AdaBinConv2d`` was compared in float64 with the official ``AdaBin_Conv2d`` (with its
``.cuda()`` calls removed) on the same weights, alpha_a, beta_a, (k, t) and inputs: output, dL/dx,
dL/dW, dL/dalpha_a and dL/dbeta_a agree to 1e-12 at (k, t) = (1000, 0.001) and (1, 10)
(tests/unit/test_adabin.py holds the official code's values as golden numbers).

Convolutions only: the official code defines ``AdaBin_Conv2d`` and no linear layer, so a model
with binarized linear layers (``model=vit_cifar``) is refused in one line before training.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from binexp.quant.layers import ConvSpec, QuantConv2d, Storage
from binexp.quant.registry import check_choice, register_quantizer
from binexp.quant.sign import SurrogateParams, make_surrogate, surrogate_names

ACT_CENTERS = ("code", "paper")


@dataclass
class AdaBinConfig:
    name: str = "adabin"
    binary_activations: bool = True
    # backward of sign((W - beta_w) / alpha_w): IR-Net's EDE, t: T_min -> T_max (official --progressive)
    weight_surrogate: str = "ede"
    act_surrogate: str = "approx_sign"  # backward of sign((x - beta_a) / alpha_a): Bi-Real's ApproxSign
    # official Log_UP: T_min = 1e-3, T_max = 10
    surrogate_params: SurrogateParams = field(default_factory=lambda: SurrogateParams(t_min=1e-3, t_max=10.0))
    act_center: str = "code"  # code: alpha_a (b + beta_a) | paper: alpha_a b + beta_a (module docstring)
    alpha_a_init: float = 1.0
    beta_a_init: float = 0.0

    def __post_init__(self) -> None:
        check_choice("act_center", self.act_center, ACT_CENTERS)
        check_choice("weight_surrogate", self.weight_surrogate, surrogate_names())
        check_choice("act_surrogate", self.act_surrogate, surrogate_names())
        if self.alpha_a_init == 0:
            raise ValueError("quantizer.alpha_a_init=0 divides by zero; fix: a non-zero distance, e.g. 1.0")


class AdaBinConv2d(QuantConv2d):
    """AdaBin binary convolution.

    Forward, weights: beta_w = mean_c W, alpha_w = sqrt(sum_c (W - beta_w)^2 / n) (per output
    channel, n = C_in k k), W_q = alpha_w sign((W - beta_w) / alpha_w) + beta_w.
    Activations: b = sign((x - beta_a) / alpha_a), x_q = alpha_a (b + beta_a) (official code) or
    alpha_a b + beta_a (``act_center=paper``); alpha_a, beta_a learnable scalars (init 1, 0).
    Backward: weights EDE k t (1 - tanh^2(t u)) at u = (W - beta_w) / alpha_w, and autograd
    through alpha_w and beta_w (not detached); activations ApproxSign max(0, 2 - 2|u|) at
    u = (x - beta_a) / alpha_a, autograd to alpha_a and beta_a.
    Paper: Tu et al., "AdaBin: Improving Binary Neural Networks with Adaptive Binary Sets",
    ECCV 2022, arXiv:2208.08084."""

    def __init__(self, cfg: AdaBinConfig, spec: ConvSpec) -> None:
        super().__init__(spec.in_channels, spec.out_channels, spec.kernel_size, spec.stride, spec.padding)
        self.act_center = cfg.act_center
        self._make_latent_weight()
        self.weight_sign = make_surrogate(cfg.weight_surrogate, "weight", cfg.surrogate_params)
        self.act_sign = None
        if cfg.binary_activations:
            self.act_sign = make_surrogate(cfg.act_surrogate, "activation", cfg.surrogate_params)
            self.alpha_a = nn.Parameter(torch.tensor(float(cfg.alpha_a_init)))
            self.beta_a = nn.Parameter(torch.tensor(float(cfg.beta_a_init)))

    def weight_center_distance(self) -> tuple[Tensor, Tensor]:
        """beta_w (filter mean) and alpha_w (population std), (C_out, 1, 1, 1), with their graphs."""
        w = self.weight
        beta = w.mean(dim=(1, 2, 3), keepdim=True)
        alpha = torch.sqrt((w - beta).square().sum(dim=(1, 2, 3), keepdim=True) / w[0].numel())
        return beta, alpha

    def latent_weight(self) -> Tensor:
        beta, alpha = self.weight_center_distance()
        return (self.weight - beta) / alpha

    def quantized_weight(self) -> Tensor:
        beta, alpha = self.weight_center_distance()
        return self.weight_sign((self.weight - beta) / alpha) * alpha + beta

    def act_latent(self, x: Tensor) -> Tensor | None:
        if self.act_sign is None:
            return None
        return (x - self.beta_a) / self.alpha_a

    def quantize_input(self, x: Tensor) -> Tensor:
        latent = self.act_latent(x)
        if latent is None or self.act_sign is None:
            return x
        b = self.act_sign(latent)
        if self.act_center == "paper":
            return self.alpha_a * b + self.beta_a
        return self.alpha_a * (b + self.beta_a)

    def extra_stats(self) -> dict[str, Tensor]:
        if self.act_sign is None:
            return {}
        return {"adabin_alpha_a": self.alpha_a.detach().clone(), "adabin_beta_a": self.beta_a.detach().clone()}

    def storage(self) -> Storage:
        """1 bit per weight; alpha_w, beta_w (2 C_out floats) and alpha_a, beta_a at inference."""
        extra = 2 if self.act_sign is not None else 0
        return Storage(
            weights=self.num_weights, weight_bits=self.num_weights, inference_floats=2 * self.out_channels + extra
        )


@register_quantizer("adabin", AdaBinConfig, "AdaBin: adaptive binary sets (weight mean/std, learnable activation set)")
def build_adabin_conv(cfg: AdaBinConfig, spec: ConvSpec) -> AdaBinConv2d:
    return AdaBinConv2d(cfg, spec)
