"""FDA, frequency-domain approximation of sign (Xu, Han, Xu, Tang, Xu, Wang, NeurIPS 2021, arXiv:2103.00841).

The backward of sign is the derivative of a truncated Fourier series (surrogate ``fda``,
:class:`binexp.quant.sign.FourierSign`), whose length n grows over training; a small "noise
adaptation" MLP per tensor adds a learned correction alpha_t * e(x) to the binary values, with
alpha_t decaying to 0 by the last epoch.

FDA has no public PyTorch training code (the authors' MindSpore release is inference-only), so
the defaults follow BiBench's ``FDAConv2d`` (htqin/BiBench, ``bibench/models/layers/fda.py``),
except one BiBench quirk that is a field: BiBench creates the activation noise module lazily in
``forward``, after its optimizer was built, so that module is never trained
(``act_noise=frozen`` reproduces it; the default ``trained`` trains it like the weight one).

Fidelity: ``FDAConv2d`` was compared in float64 with BiBench's ``FDAConv2d`` (htqin/BiBench @
5a04a6d) on the same weights, noise-module weights and inputs, at epochs 0, 200 and 399 of 400
and with a layer wide enough for both noise MLPs to be non-zero: output, dL/dx, dL/dW and the
gradients of every noise-module weight agree to 1e-12 (tests/unit/test_fda.py holds BiBench's
values as golden numbers).

Linear layers (:class:`FDALinear`, for ``model=vit_cifar``): BiBench's ``FDALinear``, compared the
same way (64 input features, so both noise MLPs are non-zero) at epochs 0, 200 and 399 of 400:
output and every gradient agree to 1e-13 (tests/unit/test_fda.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from binexp.quant.layers import ConvSpec, LinearSpec, QuantConv2d, QuantLayer, QuantLinear, Storage
from binexp.quant.registry import check_choice, register_linear, register_quantizer
from binexp.quant.sign import SurrogateParams, make_surrogate, surrogate_names

ACT_NOISES = ("trained", "frozen", "off")


def fda_alpha(epoch: int, max_epochs: int, alpha_max: float) -> float:
    """Weight of the noise term at epoch e of E (BiBench): alpha_max/2 (1 + cos(pi (e+1)/E)), 0 at the last epoch."""
    return alpha_max / 2.0 * (1.0 + math.cos(math.pi * (epoch + 1) / max(max_epochs, 1)))


@dataclass
class FDAConfig:
    name: str = "fda"
    noise_adapt: bool = True  # the noise-adaptation modules; false: plain sign with the fda surrogate
    noise_k: int = 64  # hidden width of each noise MLP = d // noise_k (BiBench: 64)
    noise_eta: float = 0.1  # coefficient of the sin(x) shortcut of each noise module
    alpha_max: float = 0.1  # alpha_t = alpha_max/2 (1 + cos(pi (e+1)/E))
    # activation noise module: trained (the paper's intent) | frozen (BiBench: its random init,
    # never optimised) | off (activations get no noise term)
    act_noise: str = "trained"
    eval_noise: bool = True  # evaluation adds alpha_t * e(x) too (BiBench); false: binary evaluation
    binary_activations: bool = True
    weight_surrogate: str = "fda"
    act_surrogate: str = "fda"
    surrogate_params: SurrogateParams = field(default_factory=SurrogateParams)

    def __post_init__(self) -> None:
        check_choice("act_noise", self.act_noise, ACT_NOISES)
        check_choice("weight_surrogate", self.weight_surrogate, surrogate_names())
        check_choice("act_surrogate", self.act_surrogate, surrogate_names())
        if self.noise_k < 1:
            raise ValueError(f"quantizer.noise_k must be >= 1, got {self.noise_k}")
        if self.alpha_max < 0:
            raise ValueError(f"quantizer.alpha_max must be >= 0, got {self.alpha_max}")


class NoiseAdaptation(nn.Module):
    """e(x) = fc2(relu(fc1(x))) + eta sin(x) along the last dimension (d -> d // k -> d, no bias);
    with d // k = 0 the MLP term is exactly 0 (as BiBench's zero-width ``nn.Linear``)."""

    def __init__(self, d: int, k: int, eta: float) -> None:
        super().__init__()
        self.eta = eta
        hidden = d // k
        self.fc1 = nn.Linear(d, hidden, bias=False) if hidden else None
        self.fc2 = nn.Linear(hidden, d, bias=False) if hidden else None

    def forward(self, x: Tensor) -> Tensor:
        shortcut = self.eta * torch.sin(x)
        if self.fc1 is None or self.fc2 is None:
            return shortcut
        return self.fc2(F.relu(self.fc1(x))) + shortcut


class FDABinary(QuantLayer):
    """FDA binarization (BiBench's training rule), whatever the geometry (:class:`FDAConv2d`,
    :class:`FDALinear`).

    Forward: W_q = (sign(W) + alpha_t e_w(W)) * mean_c|W| (per output channel, detached), e_w
    an MLP over each flattened filter (d = C_in k k; a linear layer's row: d = in); x_q = sign(x)
    + alpha_t e_a(x), e_a an MLP over the channels at each position (a token's features);
    y = conv(x_q, W_q) (or x_q W_q^T, then the full-precision bias). alpha_t = 0 in the last epoch, so
    the final forward is mean_c|W| sign(W) and sign(x); before it the forward is not binary
    (in evaluation too, unless ``eval_noise=false``).
    Backward: the sign parts with the Fourier-series surrogate (``fda``: (4w/pi) sum_{i<=n}
    cos((2i+1) w x) on |x| <= 1), the noise terms by autograd (including eta cos(x)).
    Schedules per epoch e of E: alpha_t (``fda_alpha``) and n = n0 + floor(n0 e / E).
    Paper: Xu et al., "Learning Frequency Domain Approximation for Binary Neural Networks",
    NeurIPS 2021, arXiv:2103.00841."""

    alpha_t: Tensor  # buffer: the current weight of the noise terms

    def __init__(self, cfg: FDAConfig, *geometry, **kw) -> None:
        super().__init__(*geometry, **kw)
        self.alpha_max, self.eval_noise = cfg.alpha_max, cfg.eval_noise
        self._make_latent_weight()
        # persistent: a checkpoint evaluates with the alpha_t it was trained to (0 after the last epoch)
        self.register_buffer("alpha_t", torch.tensor(cfg.alpha_max))
        self.weight_sign = make_surrogate(cfg.weight_surrogate, "weight", cfg.surrogate_params)
        self.act_sign = (
            make_surrogate(cfg.act_surrogate, "activation", cfg.surrogate_params) if cfg.binary_activations else None
        )
        d = self.num_weights // self.out_channels
        self.weight_noise = NoiseAdaptation(d, cfg.noise_k, cfg.noise_eta) if cfg.noise_adapt else None
        self.act_noise = None
        if cfg.noise_adapt and cfg.act_noise != "off" and self.act_sign is not None:
            self.act_noise = NoiseAdaptation(self.in_channels, cfg.noise_k, cfg.noise_eta)
            if cfg.act_noise == "frozen":
                self.act_noise.requires_grad_(False)

    def _noisy(self) -> bool:
        return self.training or self.eval_noise

    def quantized_weight(self) -> Tensor:
        w = self.weight
        wb = self.weight_sign(w)
        if self.weight_noise is not None and self._noisy():
            ew = self.weight_noise(w.flatten(1)).view_as(w)
            wb = wb + self.alpha_t.to(w.dtype) * ew
        return wb * w.abs().mean(dim=self.weight_dims, keepdim=True).detach()

    def quantize_input(self, x: Tensor) -> Tensor:
        if self.act_sign is None:
            return x
        xb = self.act_sign(x)
        if self.act_noise is not None and self._noisy():
            # the channels of a conv input are dim 1, a token's features the last dim
            ea = self.act_noise(x) if self.input_dims == (-1,) else self.act_noise(x.movedim(1, -1)).movedim(-1, 1)
            xb = xb + self.alpha_t.to(x.dtype) * ea
        return xb

    @torch.no_grad()
    def epoch_start(self, epoch: int, max_epochs: int, lr_decays: int = 0) -> None:
        super().epoch_start(epoch, max_epochs, lr_decays)
        self.alpha_t.fill_(fda_alpha(epoch, max_epochs, self.alpha_max))

    def extra_stats(self) -> dict[str, Tensor]:
        return {"fda_alpha": self.alpha_t.detach().clone()}

    def storage(self) -> Storage:
        """1 bit per weight and mean|W| (C_out floats) at inference (alpha_t = 0 after the last
        epoch); the noise modules are training-only."""
        training = {}
        for name, mod in (("weight_noise", self.weight_noise), ("act_noise", self.act_noise)):
            if mod is not None:
                training[name] = sum(p.numel() for p in mod.parameters())
        return Storage(
            weights=self.num_weights,
            weight_bits=self.num_weights,
            inference_floats=self.out_channels,
            training_floats=training,
        )


class FDAConv2d(FDABinary, QuantConv2d):
    """FDA binary convolution (the rule of :class:`FDABinary`), as BiBench's ``FDAConv2d``."""

    def __init__(self, cfg: FDAConfig, spec: ConvSpec) -> None:
        super().__init__(cfg, spec.in_channels, spec.out_channels, spec.kernel_size, spec.stride, spec.padding)


class FDALinear(FDABinary, QuantLinear):
    """FDA binary linear layer (the rule of :class:`FDABinary`), as BiBench's ``FDALinear``
    (``bibench/models/layers/fda.py``): mean|W| per output row, the full-precision bias added last."""

    def __init__(self, cfg: FDAConfig, spec: LinearSpec) -> None:
        super().__init__(cfg, spec.in_features, spec.out_features, spec.bias)


@register_quantizer("fda", FDAConfig, "FDA: Fourier-series sign gradient + decaying noise-adaptation modules")
def build_fda_conv(cfg: FDAConfig, spec: ConvSpec) -> FDAConv2d:
    return FDAConv2d(cfg, spec)


@register_linear("fda")
def build_fda_linear(cfg: FDAConfig, spec: LinearSpec) -> FDALinear:
    return FDALinear(cfg, spec)
