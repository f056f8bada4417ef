"""The quantized-layer interface every method implements.

A model never knows which method it runs: it asks the quantizer's factory
(:class:`binexp.quant.registry.ConvFactory`) for each binarizable convolution (``conv(...)``)
and each binarizable linear layer (``conv.linear(...)``); the factory describes the layer as a
:class:`ConvSpec` (channels, kernel, stride, padding, stage, index) or a :class:`LinearSpec`
(features, bias, role, stage, index; one index space per network) and hands it to the method's
conv or linear builder, so no method counts layers itself. Full precision returns a plain
``nn.Conv2d`` / ``nn.Linear``; every binary method returns a :class:`QuantConv2d` /
:class:`QuantLinear` subclass. Both derive from :class:`QuantLayer`, which provides

* ``forward``: input quantizer -> convolution (or matmul) with the quantized weight -> output
  scaling (-> full-precision bias, linear layers only);
* ``epoch_start(epoch, max_epochs)`` / ``step_start(epoch, step)``: per-epoch and per-step
  method work (surrogate schedules, RBNN's rotation), called by
  :class:`binexp.lit.callbacks.QuantizerSchedule` outside ``forward``, never in validation;
* ``latent_weight()`` / ``quantized_weight()`` / ``weight_signs()``: what diagnostics read;
* ``storage()``: how many bits the layer needs at inference, and the training-only state it
  carries, for ``metrics.json`` and ``binexp summary``.

All method state is parameters or buffers of the layer, so it moves with ``.to()``, is saved
in checkpoints and is identical on every DDP rank.

A method writes its rule once, geometry-free, in a class deriving from :class:`QuantLayer`
(statistics "per output channel" reduce over ``self.weight_dims``: (1, 2, 3) for a conv weight
(C_out, C_in, k, k), (1,) for a linear weight (out, in); statistics "per sample" of the input
reduce over ``self.input_dims``: (1, 2, 3) of an (N, C, H, W) conv input, the last dim (per
token) of an (..., in) linear input), and gets both layers by mixing it with the geometry:
``class XnorConv2d(XnorBinary, QuantConv2d)``, ``class XnorLinear(XnorBinary, QuantLinear)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

if TYPE_CHECKING:
    from binexp.quant.sign import Surrogate


@dataclass(frozen=True)
class ConvSpec:
    """One binarizable convolution of a network, as its method's builder receives it.

    ``stage``: 0-based stage of the layer in its network, for methods with per-stage settings
    (FleXOR Table 2). ``index``: 0-based position of the layer among the network's binarizable
    convolutions, in construction order, for methods whose state is seeded per layer (RBNN's
    rotations); the same architecture gives the same indices on every rank."""

    in_channels: int
    out_channels: int
    kernel_size: int
    stride: int = 1
    padding: int = 0
    stage: int = 0
    index: int = 0


@dataclass(frozen=True)
class LinearSpec:
    """One binarizable linear layer of a network, as its method's linear builder receives it.

    ``bias``: a full-precision bias added after the binary matmul and the method's output scale
    (BiBench and BiT keep it full precision). ``role``: what the layer is in its block (qkv,
    proj, fc1, fc2, mlp), for diagnostics only. ``stage``, ``index``: as :class:`ConvSpec`; the
    index continues the network's conv numbering (one index space per network)."""

    in_features: int
    out_features: int
    bias: bool = True
    role: str = "mlp"
    stage: int = 0
    index: int = 0


@dataclass
class Storage:
    """What a layer stores, in bits, split by role.

    ``weights``: number of weight positions the layer represents (C_out*C_in*k*k).
    ``weight_bits``: bits stored for those weights at inference (1 per weight for 1-bit
    methods, q*N_in*ceil(n/N_out) for FleXOR). ``inference_floats``: other 32-bit values needed
    at inference (scales such as alpha). ``training_floats``: method state used only while
    training (RBNN's R1, R2, theta...), by name."""

    weights: int
    weight_bits: int
    inference_floats: int = 0
    training_floats: dict[str, int] = field(default_factory=dict)

    @property
    def bits_per_weight(self) -> float:
        return self.weight_bits / self.weights


class QuantLayer(nn.Module):
    """Base class of binarized layers: the hooks and diagnostics every method provides, whatever
    the geometry (:class:`QuantConv2d`, :class:`QuantLinear`). ``weight_dims``: the dims of the
    weight a per-output statistic reduces over; ``input_dims``: those of the input a per-sample
    (per-token) statistic reduces over."""

    weight: nn.Parameter
    in_channels: int
    out_channels: int
    weight_dims: tuple[int, ...] = (1, 2, 3)
    input_dims: tuple[int, ...] = (1, 2, 3)

    def _make_latent_weight(self) -> None:  # pragma: no cover - abstract
        """Create ``self.weight`` in the geometry's shape, with the matching ``nn`` layer's init."""
        raise NotImplementedError

    def reset_latent_weight(self, init_fn) -> None:
        """Apply an architecture's weight init (e.g. kaiming-normal) to the latent weight.
        Methods whose latent state is not a conv-shaped weight (FleXOR) override this."""
        if isinstance(getattr(self, "weight", None), nn.Parameter):
            init_fn(self.weight)

    # -- forward --------------------------------------------------------------------------
    def quantize_input(self, x: Tensor) -> Tensor:
        return x

    def quantized_weight(self) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def scale_output(self, out: Tensor, x: Tensor) -> Tensor:
        return out

    def weight_shape_of(self, per_output: Tensor) -> Tensor:
        """``per_output`` (C_out,) viewed so it broadcasts against the weight: (C_out, 1, 1, 1)
        for a conv, (out, 1) for a linear layer."""
        return per_output.view(-1, *([1] * len(self.weight_dims)))

    # -- schedules ------------------------------------------------------------------------
    def surrogates(self) -> list[Surrogate]:
        from binexp.quant.sign import Surrogate

        return [m for m in self.modules() if isinstance(m, Surrogate)]

    @torch.no_grad()
    def epoch_start(self, epoch: int, max_epochs: int, lr_decays: int = 0) -> None:
        """Per-epoch work before the first training step of ``epoch`` (0-based) of
        ``max_epochs``; ``lr_decays`` counts the multi-step LR decays so far (FleXOR doubles
        S_tanh at each). Runs in place, outside ``forward``, identically on every rank."""
        for s in self.surrogates():
            s.set_progress(epoch, max_epochs)

    @torch.no_grad()
    def resume_epoch(self, epoch: int, max_epochs: int, lr_decays: int = 0) -> None:
        """Re-enter ``epoch`` after a resume from a checkpoint taken inside it (its start work
        already ran and its effect is in the restored state): recompute the schedule values
        that are not checkpointed (surrogate t, k; FleXOR's S_tanh), redo nothing else."""
        self.epoch_start(epoch, max_epochs, lr_decays)

    @torch.no_grad()
    def step_start(self, epoch: int, step: int) -> None:
        """Per-step work before a training step (most methods have none)."""

    @torch.no_grad()
    def step_end(self, epoch: int, step: int) -> None:
        """Per-step work after the optimizer step (e.g. FleXOR's clipping of encrypted weights)."""

    @torch.no_grad()
    def before_optimizer_step(self) -> None:
        """After backward (gradients accumulated and unscaled), before the optimizer step: read or
        change this layer's gradients (RBNN: theta's gradient norm and its optional clipping)."""

    # -- diagnostics ----------------------------------------------------------------------
    def latent_weight(self) -> Tensor:
        """The real-valued tensor whose sign is the binary weight, shaped like the weight."""
        return self.weight

    def weight_signs(self) -> Tensor:
        """The binary weight in {-1,+1}, shaped like the weight."""
        from binexp.quant.sign import sign_pm1

        return sign_pm1(self.latent_weight())

    def binary_input(self) -> bool:
        """Whether the layer's input is 1 bit, so that with its 1-bit weights every MAC is binary
        (``binexp summary``): the input goes through a sign (an activation surrogate)."""
        return any(s.role == "activation" for s in self.surrogates())

    def act_latent(self, x: Tensor) -> Tensor | None:
        """The real tensor whose sign is this layer's binary input, for input ``x``; None when
        the layer keeps its activations real (activation angular bias is measured on it)."""
        return x if getattr(self, "act_sign", None) is not None else None

    def penalty_weight(self) -> Tensor | None:
        """The real tensor whose sign is the binary weight, *with* its autograd graph (what an
        angle penalty differentiates); None when the layer has no conv-shaped latent weight
        (FleXOR) or keeps real weights; conv (4-D) or linear (2-D) shaped."""
        w = getattr(self, "weight", None)
        if not isinstance(w, nn.Parameter) or w.dim() not in (2, 4) or getattr(self, "weight_sign", True) is None:
            return None
        return w

    def final_values(self) -> dict[str, float]:
        """Per-layer numbers for metrics.json, refreshed at every write (RBNN: ``alpha_final``)."""
        return {}

    def report(self) -> dict:
        """Plain numbers about this layer for metrics.json and the run log (``layer_reports``)."""
        return {}

    def extra_stats(self) -> dict[str, Tensor]:
        """Method-specific scalars for TensorBoard (logged as ``<name>/<layer>``)."""
        return {}

    def histograms(self) -> dict[str, Tensor]:
        """Method-specific tensors for TensorBoard histograms (``<name>/<layer>``)."""
        return {"latent_weight": self.latent_weight()}

    @property
    def num_weights(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def storage(self) -> Storage:
        return Storage(weights=self.num_weights, weight_bits=self.num_weights, inference_floats=self.out_channels)


class QuantConv2d(QuantLayer):
    """Base class of binarized convolutions (no bias: every one is followed by BatchNorm)."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = (kernel_size, kernel_size)
        self.stride = (stride, stride)
        self.padding = (padding, padding)

    def _make_latent_weight(self) -> None:
        """A latent real-valued weight, initialised like ``nn.Conv2d`` (kaiming-uniform, a=sqrt5)."""
        self.weight = nn.Parameter(torch.empty(self.out_channels, self.in_channels, *self.kernel_size))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))

    def forward(self, x: Tensor) -> Tensor:
        out = F.conv2d(self.quantize_input(x), self.quantized_weight(), None, self.stride, self.padding)
        return self.scale_output(out, x)

    @property
    def num_weights(self) -> int:
        return self.out_channels * self.in_channels * self.kernel_size[0] * self.kernel_size[1]

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding}"
        )


class QuantLinear(QuantLayer):
    """Base class of binarized linear layers, ``(..., in) -> (..., out)``:
    ``y = scale_output(quantize_input(x) @ quantized_weight()^T, x) + bias``.

    The weight is (out, in); per-output statistics (the methods' alpha) are per row
    (``weight_dims = (1,)``); per-sample input statistics are per token, over the last dim
    (``input_dims = (-1,)``). The bias (``spec.bias``) stays full precision and is added after the
    method's output scale, so a scale never multiplies it. ``in_channels``/``out_channels`` are
    ``in_features``/``out_features`` under the names the methods' shared code uses."""

    weight_dims = (1,)
    input_dims = (-1,)

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__()
        self.in_features = self.in_channels = in_features
        self.out_features = self.out_channels = out_features
        self.bias = nn.Parameter(torch.empty(out_features)) if bias else None

    def _make_latent_weight(self) -> None:
        """A latent real-valued weight and the bias, initialised like ``nn.Linear``
        (kaiming-uniform a=sqrt5; bias U(-1/sqrt(in), 1/sqrt(in)))."""
        self.weight = nn.Parameter(torch.empty(self.out_features, self.in_features))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1.0 / math.sqrt(self.in_features)
            nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: Tensor) -> Tensor:
        out = self.scale_output(F.linear(self.quantize_input(x), self.quantized_weight()), x)
        return out if self.bias is None else out + self.bias

    @property
    def num_weights(self) -> int:
        return self.out_features * self.in_features

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


def quantized_layers(model: nn.Module) -> list[tuple[str, QuantLayer]]:
    """All binarized layers of a model (convolutions and linear layers), with their qualified
    names, in definition order."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, QuantLayer)]
