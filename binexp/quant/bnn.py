"""BNN, Binarized Neural Networks (Courbariaux, Hubara, Soudry, El-Yaniv, Bengio 2016).

Forward: y = conv(sign(x), sign(W)), sign(0) = +1, **no scaling factor** (the BatchNorm after
the conv does all the scaling). Backward: the clipped straight-through estimator for both,
dL/dW = g * 1{|W| <= 1}, dL/dx = g * 1{|x| <= 1} ("STE with saturation").

Latent-weight clipping (``clip_latent``): BNN's training algorithm (the paper's Algorithm 1)
clips the real-valued weights to [-1, 1] after every update, so that a weight whose gradient keeps pointing outwards
cannot drift beyond the region where the clipped STE still passes a gradient. BiBench's
``BNNConv2d`` (the benchmark's reading, htqin/BiBench@5a04a6d ``bibench/models/layers/bnn.py``)
does not clip, and neither does the version of the authors' PyTorch code read
(itayhubara/BinaryNet.pytorch@80f6d46 ``main_binary.py``; its ``models/binarized_modules.py``
``Binarize`` backward is the identity, saturation coming from the model's Hardtanh layers), so
the default is off;
``clip_latent=true`` is the algorithm as described in the paper.

Linear layers (:class:`BnnLinear`): the same rule, the bias full precision (BiBench's ``BNNLinear``).

Checked against BiBench's ``BNNConv2d`` and ``BNNLinear`` (same weights and inputs, float64, no
input at |x| = 1 where BiBench's conv clamp blocks the edge and binexp passes it): output, dL/dx,
dL/dW (and dL/db) agree to 1e-15 (tests/unit/test_bnn.py).

Paper: Courbariaux et al., "Binarized Neural Networks: Training Deep Neural Networks with
Weights and Activations Constrained to +1 or -1", arXiv:1602.02830 (Hubara et al., NeurIPS 2016).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from binexp.quant.layers import ConvSpec, LinearSpec, QuantConv2d, QuantLayer, QuantLinear, Storage
from binexp.quant.registry import check_choice, register_linear, register_quantizer
from binexp.quant.sign import SurrogateParams, make_surrogate, surrogate_names


@dataclass
class BnnConfig:
    name: str = "bnn"
    # false: real-valued conv input (W1/A32)
    binary_activations: bool = True
    # backward of sign(W) and sign(x); any `binexp list surrogate` (clipped_ste: 1{|x| <= clip})
    weight_surrogate: str = "clipped_ste"
    act_surrogate: str = "clipped_ste"
    surrogate_params: SurrogateParams = field(default_factory=SurrogateParams)
    # clip the latent weights to [-clip_bound, clip_bound] after every optimizer step (the
    # paper's training algorithm); false as BiBench and the authors' PyTorch code
    clip_latent: bool = False
    clip_bound: float = 1.0

    def __post_init__(self) -> None:
        check_choice("weight_surrogate", self.weight_surrogate, surrogate_names())
        check_choice("act_surrogate", self.act_surrogate, surrogate_names())
        if not self.clip_bound > 0:
            raise ValueError(f"quantizer.clip_bound must be > 0, got {self.clip_bound}")


class BnnBinary(QuantLayer):
    """BNN binarization, whatever the geometry (:class:`BnnConv2d`, :class:`BnnLinear`):
    y = conv(sign(x), sign(W)) (a matmul plus the full-precision bias in a linear layer), no scale.

    Backward: dL/dx = g F_a'(x), dL/dW = g F_w'(W) (clipped STE by default: 1{|.| <= 1}).
    ``step_end`` clips W to [-clip_bound, clip_bound] when ``clip_latent``.
    Paper: Courbariaux et al., arXiv:1602.02830."""

    def __init__(self, cfg: BnnConfig, *geometry, **kw) -> None:
        super().__init__(*geometry, **kw)
        self.clip_latent = cfg.clip_latent
        self.clip_bound = cfg.clip_bound
        self._make_latent_weight()
        self.weight_sign = make_surrogate(cfg.weight_surrogate, "weight", cfg.surrogate_params)
        self.act_sign = (
            make_surrogate(cfg.act_surrogate, "activation", cfg.surrogate_params) if cfg.binary_activations else None
        )

    def quantized_weight(self) -> Tensor:
        return self.weight_sign(self.weight)

    def quantize_input(self, x: Tensor) -> Tensor:
        return self.act_sign(x) if self.act_sign is not None else x

    @torch.no_grad()
    def step_end(self, epoch: int, step: int) -> None:
        if self.clip_latent:
            self.weight.clamp_(-self.clip_bound, self.clip_bound)

    def storage(self) -> Storage:
        """1 bit per weight, no scale."""
        return Storage(weights=self.num_weights, weight_bits=self.num_weights)

    def extra_repr(self) -> str:
        clip = f", clip_latent={self.clip_bound}" if self.clip_latent else ""
        a = "" if self.act_sign is not None else ", real activations"
        return f"{super().extra_repr()}{clip}{a}"


class BnnConv2d(BnnBinary, QuantConv2d):
    """BNN binary convolution (the rule of :class:`BnnBinary`)."""

    def __init__(self, cfg: BnnConfig, spec: ConvSpec) -> None:
        super().__init__(cfg, spec.in_channels, spec.out_channels, spec.kernel_size, spec.stride, spec.padding)


class BnnLinear(BnnBinary, QuantLinear):
    """BNN binary linear layer: y = sign(x) @ sign(W)^T + b, b full precision (BiBench's
    ``BNNLinear``; the rule of :class:`BnnBinary`)."""

    def __init__(self, cfg: BnnConfig, spec: LinearSpec) -> None:
        super().__init__(cfg, spec.in_features, spec.out_features, spec.bias)


@register_quantizer("bnn", BnnConfig, "BNN: sign(W), sign(x), no scale, clipped STE (optional latent clipping)")
def build_bnn_conv(cfg: BnnConfig, spec: ConvSpec) -> BnnConv2d:
    return BnnConv2d(cfg, spec)


@register_linear("bnn")
def build_bnn_linear(cfg: BnnConfig, spec: LinearSpec) -> BnnLinear:
    return BnnLinear(cfg, spec)
