"""Sign with a pluggable surrogate gradient: the one family every quantizer draws from.

Every surrogate here computes exactly ``sign(x)`` in the forward pass, with the binary-network
convention **sign(0) = +1** (``torch.sign`` would give 0, a ternary value). They differ only in
the gradient used in the backward pass, ``dL/dx = dL/dy * F'(x)``.

Schedule values (RBNN's t and k, the annealed-tanh temperature, FleXOR's S_tanh) live in
buffers of the surrogate module, so they move with ``.to()``, are identical on every DDP rank
and are changed in place by :meth:`Surrogate.set_progress` once per epoch (no recompilation of
compiled graphs: they are tensors, not Python attributes). They are not saved in checkpoints
(``persistent=False``): on resume they are recomputed from the epoch, as the official RBNN code
does.

Names (the ``*_surrogate`` config fields):

========================  =========================================  ==========================
name                      backward F'(x)                             paper
========================  =========================================  ==========================
``ste``                   1                                          Bengio et al. 2013
``clipped_ste``           1{|x| <= clip}                             BNN (Hubara 2016), XNOR-Net
``approx_sign``           max(0, 2 - 2|x|)                           Bi-Real Net (Liu 2018)
``swish_sign``            b(2 - bx tanh(bx/2)) / (1 + cosh(bx))      BNN+ (Darabi 2018)
``tanh``                  t(1 - tanh^2(tx)), t annealed per epoch    annealed tanh (IR-Net EDE family)
``rbnn``                  max(0, k(sqrt2 t - t^2|x|))                RBNN (Lin 2020), Sec. 3.4
``ede``                   k t (1 - tanh^2(tx)), t, k per epoch       IR-Net (Qin 2020), EDE
``scaled_tanh``           S(1 - tanh^2(Sx))                          FleXOR (Lee 2020), Eq. 5-6
``fda``                   4w/pi sum_{i<=n} cos((2i+1)wx), |x|<=clip  FDA (Xu 2021), BiBench code
========================  =========================================  ==========================
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn


def sign_pm1(x: Tensor) -> Tensor:
    """Exact binary sign: +1 where x >= 0, -1 elsewhere (so sign(0) = +1).
    (A compare and two in-place ops: ~10x faster on CPU than ``torch.where`` with constants.)"""
    return (x >= 0).to(x.dtype).mul_(2).sub_(1)


@torch.no_grad()
def quantization_error(w: Tensor) -> Tensor:
    """||alpha*sign(w) - w||^2 / ||w||^2 with alpha = mean|w_c| per output channel."""
    w = w.detach().float().flatten(1)
    alpha = w.abs().mean(1, keepdim=True)
    return ((alpha * sign_pm1(w) - w) ** 2).sum() / (w**2).sum().clamp_min(1e-12)


class _SignWithSurrogate(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, surrogate: Surrogate) -> Tensor:
        ctx.save_for_backward(x)
        ctx.surrogate = surrogate
        return sign_pm1(x)

    @staticmethod
    def backward(ctx, grad: Tensor):
        (x,) = ctx.saved_tensors
        return grad * ctx.surrogate.derivative(x), None


@dataclass
class SurrogateParams:
    """Knobs of the surrogates; each surrogate reads only the ones it needs."""

    clip: float = 1.0  # clipped_ste: gradient passes where |x| <= clip
    beta: float = 5.0  # swish_sign
    tanh_start: float = 1.0  # tanh: temperature at epoch 0
    tanh_end: float = 10.0  # tanh: temperature approached at the last epoch
    t_min: float = 1e-2  # rbnn, ede: T_min
    t_max: float = 1e1  # rbnn, ede: T_max
    # rbnn, ede: the run length E of t = T_min (T_max/T_min)^(e/E). None (default, the codes): the run's
    # max_epochs. An integer N: t follows the schedule of an N-epoch run, held at T_max after epoch N
    # (N = 1000 on a short run keeps t near T_min; a 1000-epoch run is unchanged)
    schedule_epochs: int | None = None
    # rbnn, activation role only: the largest t_a (t_a = min(max(t, 1), act_t_max)); None (default) =
    # no cap, the code's max(t, 1), which rises to T_max over the last third of the run. 1.0 keeps the
    # activation surrogate at F'(x) = max(0, sqrt2 - |x|) throughout
    act_t_max: float | None = None
    s_tanh: float = 10.0  # scaled_tanh: S_tanh
    fda_omega: float = 0.1  # fda: base frequency omega of the Fourier series
    fda_n0: int = 9  # fda: terms beyond the first at epoch 0 (n rises from n0 to 2 n0 - 1 over training)

    def __post_init__(self) -> None:
        if self.schedule_epochs is not None and self.schedule_epochs < 1:
            raise ValueError(f"surrogate_params.schedule_epochs must be >= 1 or null, got {self.schedule_epochs}")
        if self.act_t_max is not None and not self.act_t_max >= 1.0:
            raise ValueError(
                f"surrogate_params.act_t_max must be >= 1 (the activation's t is never below 1), got {self.act_t_max}"
            )
        if self.fda_n0 < 0:
            raise ValueError(f"surrogate_params.fda_n0 must be >= 0, got {self.fda_n0}")
        for key in ("clip", "beta", "tanh_start", "tanh_end", "t_min", "t_max", "s_tanh", "fda_omega"):
            if not getattr(self, key) > 0:
                raise ValueError(f"surrogate_params.{key} must be > 0, got {getattr(self, key)}")
        if self.t_min > self.t_max:
            raise ValueError(
                f"surrogate_params.t_min={self.t_min} > t_max={self.t_max} runs the rbnn schedule backwards; "
                f"fix: t_min <= t_max"
            )


class Surrogate(nn.Module):
    """Base class: forward is exact sign (sign(0)=+1); backward multiplies by :meth:`derivative`."""

    name = "base"

    def __init__(self, role: str = "weight", params: SurrogateParams | None = None) -> None:
        super().__init__()
        if role not in ("weight", "activation"):
            raise ValueError(f"surrogate role must be 'weight' or 'activation', got {role!r}")
        self.role = role
        self.params = params or SurrogateParams()

    def forward(self, x: Tensor) -> Tensor:
        return _SignWithSurrogate.apply(x, self)

    def derivative(self, x: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def set_progress(self, epoch: int, max_epochs: int) -> None:
        """Per-epoch schedule hook; constant surrogates ignore it."""

    def extra_repr(self) -> str:
        return f"role={self.role}"


class STE(Surrogate):
    """Straight-through estimator: forward sign(x), backward 1 (Bengio et al., 2013).

    Forward: sign(x) (sign(0)=+1). Backward: F'(x) = 1.

    Paper: Bengio, Leonard, Courville, "Estimating or propagating gradients through stochastic
    neurons", 2013."""

    name = "ste"

    def derivative(self, x: Tensor) -> Tensor:
        return torch.ones_like(x)


class ClippedSTE(Surrogate):
    """Clipped STE: forward sign(x), backward 1{|x| <= clip} (BNN, Hubara et al., 2016; XNOR-Net).

    Forward: sign(x) (sign(0)=+1).
    Backward: F'(x) = 1 where |x| <= clip (edges included, larq's convention), else 0.

    Paper: Hubara et al., "Binarized Neural Networks", NeurIPS 2016; used by XNOR-Net
    (Rastegari et al., ECCV 2016) for weights and activations."""

    name = "clipped_ste"

    def derivative(self, x: Tensor) -> Tensor:
        return (x.abs() <= self.params.clip).to(x.dtype)


class ApproxSign(Surrogate):
    """ApproxSign: forward sign(x), backward max(0, 2 - 2|x|) (Bi-Real Net, Liu et al., 2018).

    Forward: sign(x) (sign(0)=+1).
    Backward: F'(x) = max(0, 2 - 2|x|), the derivative of the piecewise polynomial
    F(x) = 2x + x^2 (-1 <= x < 0), 2x - x^2 (0 <= x < 1), sign(x) outside.

    Paper: Liu et al., "Bi-Real Net", ECCV 2018, Sec. 3.2."""

    name = "approx_sign"

    def derivative(self, x: Tensor) -> Tensor:
        return torch.clamp(2.0 - 2.0 * x.abs(), min=0.0)


class SwishSign(Surrogate):
    """SwishSign: forward sign(x), backward b(2 - bx tanh(bx/2)) / (1 + cosh(bx)) (BNN+, Darabi et al., 2018).

    Forward: sign(x) (sign(0)=+1).
    Backward: F'(x) = b(2 - b x tanh(b x / 2)) / (1 + cosh(b x)), the derivative of
    2 sigmoid(bx)(1 + bx(1 - sigmoid(bx))) - 1, with b = ``surrogate_params.beta``.

    Paper: Darabi et al., "BNN+: Improved binary network training", 2018."""

    name = "swish_sign"

    def derivative(self, x: Tensor) -> Tensor:
        b = self.params.beta
        bx = b * x
        return b * (2.0 - bx * torch.tanh(bx / 2.0)) / (1.0 + torch.cosh(bx))


class AnnealedTanh(Surrogate):
    """Annealed tanh: forward sign(x), backward t(1 - tanh^2(tx)), t rising per epoch (cf. IR-Net's EDE, 2020).

    Forward: sign(x) (sign(0)=+1).
    Backward: F'(x) = t (1 - tanh^2(t x)), the derivative of tanh(t x), with the temperature
    t = tanh_start * (tanh_end / tanh_start)^(e / E) at epoch e of E (log-linear, as IR-Net's
    EDE and RBNN schedule theirs), so tanh(t x) sharpens toward sign as training proceeds.

    Paper: the "annealed tanh" approximation RBNN's reviewers asked about (cf. IR-Net, Qin et
    al., CVPR 2020, EDE)."""

    t: Tensor  # buffer: the current slope

    name = "tanh"

    def __init__(self, role: str = "weight", params: SurrogateParams | None = None) -> None:
        super().__init__(role, params)
        self.register_buffer("t", torch.tensor(float(self.params.tanh_start)), persistent=False)

    def set_progress(self, epoch: int, max_epochs: int) -> None:
        p = self.params
        self.t.fill_(p.tanh_start * (p.tanh_end / p.tanh_start) ** (epoch / max(max_epochs, 1)))

    def derivative(self, x: Tensor) -> Tensor:
        t = self.t.to(x.dtype)
        return t * (1.0 - torch.tanh(t * x) ** 2)


def rbnn_t_k(epoch: int, max_epochs: int, t_min: float, t_max: float) -> tuple[float, float]:
    """RBNN's per-epoch schedule (official code): t = Tmin (Tmax/Tmin)^(e/E), k = max(1/t, 1)
    (e > E, as with ``schedule_epochs`` shorter than the run, holds t at Tmax)."""
    progress = min(epoch / max(max_epochs, 1), 1.0)
    t = 10 ** (math.log10(t_min) + (math.log10(t_max) - math.log10(t_min)) * progress)
    return t, max(1.0 / t, 1.0)


class LogScheduleSurrogate(Surrogate):
    """Base of the surrogates whose (t, k) follow t = T_min (T_max/T_min)^(e/E), k = max(1/t, 1)
    per epoch (``rbnn``, ``ede``): non-persistent buffers ``t``, ``k`` set by :meth:`set_progress`."""

    t: Tensor  # buffers: the current t and k
    k: Tensor

    def __init__(self, role: str = "weight", params: SurrogateParams | None = None) -> None:
        super().__init__(role, params)
        self.register_buffer("t", torch.tensor(0.0), persistent=False)
        self.register_buffer("k", torch.tensor(0.0), persistent=False)
        self.set_progress(0, 1)

    def role_t_k(self, t: float, k: float) -> tuple[float, float]:
        """(t, k) for this role from the schedule's (t, k); the same for both by default."""
        return t, k

    def set_progress(self, epoch: int, max_epochs: int) -> None:
        p = self.params
        horizon = max_epochs if p.schedule_epochs is None else p.schedule_epochs
        t, k = self.role_t_k(*rbnn_t_k(epoch, horizon, p.t_min, p.t_max))
        self.t.fill_(t)
        self.k.fill_(k)


class RBNNTrainingAware(LogScheduleSurrogate):
    """RBNN's training-aware sign: forward sign(x), backward max(0, k(sqrt2 t - t^2|x|)) (Lin et al., 2020).

    Forward: sign(x) (sign(0)=+1).
    Backward: F'(x; k, t) = max(0, k (sqrt(2) t - t^2 |x|)), the derivative of
    F(x) = k(-sign(x) t^2 x^2 / 2 + sqrt(2) t x) on |x| < sqrt(2)/t, k sign(x) outside.

    Schedule per epoch e of E (official code): t = Tmin (Tmax/Tmin)^(e/E).
    Weights use k = max(1/t, 1); activations use k = 1 and t_a = max(t, 1) (the code's
    asymmetry, not stated in the paper), capped at ``act_t_max`` (binexp's short-budget
    variant; no cap by default).

    Paper: Lin et al., "Rotated Binary Neural Network", NeurIPS 2020, Sec. 3.4."""

    name = "rbnn"

    def role_t_k(self, t: float, k: float) -> tuple[float, float]:
        if self.role != "activation":
            return t, k
        cap = self.params.act_t_max
        return (max(t, 1.0) if cap is None else min(max(t, 1.0), cap)), 1.0

    def derivative(self, x: Tensor) -> Tensor:
        t = self.t.to(x.dtype)
        k = self.k.to(x.dtype)
        # max(0, k (sqrt2 t - t^2 |x|)), in place on one temporary (x itself is left alone)
        return x.abs().mul_(-t * t).add_(math.sqrt(2.0) * t).mul_(k).clamp_(min=0.0)


class EDE(LogScheduleSurrogate):
    """IR-Net's Error Decay Estimator: forward sign(x), backward k t (1 - tanh^2(t x)) (Qin et al., 2020).

    Forward: sign(x) (sign(0)=+1).
    Backward: F'(x; k, t) = k t (1 - tanh^2(t x)), the derivative of k tanh(t x).

    Schedule per epoch e of E (0-based, set before the epoch's first step): t = T_min (T_max /
    T_min)^(e/E), k = max(1/t, 1) (``surrogate_params.t_min``, ``t_max``), the same t and k for
    weights and activations (unlike ``rbnn``, whose activation role uses k = 1). Early on
    (t << 1, k = 1/t) F' is ~1 over a wide range: the straight-through estimator's "update
    ability"; at the end (t = T_max, k = 1) it is the sharp derivative of tanh(T_max x): sign's
    "accuracy". IR-Net's code uses T_min = 0.1 (VGG-small, 1W/32A ResNet-20) and 1e-3 (1W/1A
    ResNet-20), T_max = 10.

    Checked against the official code (htqin/IR-Net@f63a590,
    ``CIFAR-10/ResNet20/1w1a/modules/binaryfunction.py:BinaryQuantize``, ``trainer.py:Log_UP``):
    same derivative for the same (k, t), float64, to 1e-15 (tests/unit/test_irnet.py).

    Paper: Qin et al., "Forward and Backward Information Retention for Accurate Binary Neural
    Networks", CVPR 2020 (arXiv:1909.10788)."""

    name = "ede"

    def derivative(self, x: Tensor) -> Tensor:
        t = self.t.to(x.dtype)
        k = self.k.to(x.dtype)
        return torch.tanh(x * t).square_().neg_().add_(1.0).mul_(k * t)


class ScaledTanh(Surrogate):
    """Scaled tanh: forward sign(x), backward S(1 - tanh^2(Sx)) (FleXOR, Lee et al., 2020).

    Forward: sign(x) (sign(0)=+1).
    Backward: F'(x) = S (1 - tanh^2(S x)), the derivative of tanh(S x), S = S_tanh
    (a buffer, so FleXOR's S_tanh warm-up and doubling schedules change it in place).

    Paper: Lee et al., "FleXOR: Trainable Fractional Quantization", NeurIPS 2020, Eqs. 5-6."""

    s: Tensor  # buffer: the current S_tanh

    name = "scaled_tanh"

    def __init__(self, role: str = "weight", params: SurrogateParams | None = None) -> None:
        super().__init__(role, params)
        self.register_buffer("s", torch.tensor(float(self.params.s_tanh)), persistent=False)

    def derivative(self, x: Tensor) -> Tensor:
        s = self.s.to(x.dtype)
        return s * (1.0 - torch.tanh(s * x) ** 2)


def fda_terms(epoch: int, max_epochs: int, n0: int) -> int:
    """FDA's per-epoch series length (BiBench ``FDAConv2d.model_params_update``):
    n = n0 + floor(n0 * e / E), so 9 -> 17 over training for n0 = 9."""
    return n0 + int(epoch / max(max_epochs, 1) * n0)


class FourierSign(Surrogate):
    """FDA Fourier-series sign: forward sign(x), backward the derivative of n + 1 sine terms (Xu et al., 2021).

    Forward: sign(x) (sign(0)=+1).
    Backward: F'(x) = (4 w / pi) sum_{i=0}^{n} cos((2i+1) w x) for |x| <= clip, 0 outside: the
    derivative of the truncated series sign(x) ~ (4/pi) sum sin((2i+1) w x)/(2i+1), with
    w = ``fda_omega`` (0.1) and the edges |x| = clip passing, as BiBench's ``FDA_BinaryQuantize``
    (which zeroes only x > 1 and x < -1). The sum is evaluated in closed form,
    sum_{i=0}^{n} cos((2i+1) t) = sin(2(n+1) t) / (2 sin t) (limit n + 1 at t = 0), so a new n
    neither loops nor recompiles. Late in training the truncated derivative is negative near
    |x| -> 1 (-0.184 at x = 0.95, n = 17); that is the method, not clamped.

    Schedule per epoch e of E: n = n0 + floor(n0 e / E) (n0 = ``fda_n0`` = 9: 9 -> 17), the same
    for weights and activations (BiBench ``FDAConv2d.model_params_update``).

    Paper: Xu, Han, Xu, Tang, Xu, Wang, "Learning Frequency Domain Approximation for Binary
    Neural Networks", NeurIPS 2021, arXiv:2103.00841; the rule above is BiBench's code
    (htqin/BiBench ``bibench/models/layers/fda.py``), the only public training implementation."""

    n: Tensor  # buffer: the current number of terms beyond the first

    name = "fda"

    def __init__(self, role: str = "weight", params: SurrogateParams | None = None) -> None:
        super().__init__(role, params)
        self.register_buffer("n", torch.tensor(float(self.params.fda_n0)), persistent=False)

    def set_progress(self, epoch: int, max_epochs: int) -> None:
        self.n.fill_(fda_terms(epoch, max_epochs, self.params.fda_n0))

    def derivative(self, x: Tensor) -> Tensor:
        n1 = self.n.to(x.dtype) + 1.0
        theta = x * self.params.fda_omega
        sin_theta = torch.sin(theta)
        small = sin_theta.abs() < 1e-6
        series = torch.where(small, n1, torch.sin(2.0 * n1 * theta) / (2.0 * torch.where(small, 1.0, sin_theta)))
        inside = (x.abs() <= self.params.clip).to(x.dtype)
        return series.mul_(4.0 * self.params.fda_omega / math.pi).mul_(inside)


SURROGATES: dict[str, type[Surrogate]] = {
    cls.name: cls
    for cls in (STE, ClippedSTE, ApproxSign, SwishSign, AnnealedTanh, RBNNTrainingAware, EDE, ScaledTanh, FourierSign)
}


def surrogate_names() -> list[str]:
    return sorted(SURROGATES)


def make_surrogate(name: str, role: str = "weight", params: SurrogateParams | None = None) -> Surrogate:
    """Build the surrogate registered under ``name`` for weights or activations."""
    try:
        cls = SURROGATES[name]
    except KeyError:
        raise ValueError(f"unknown surrogate {name!r}; choose one of: {', '.join(surrogate_names())}") from None
    return cls(role=role, params=params)
