"""RBNN: Rotated Binary Neural Network (Lin, Ji, Xu, Zhang, Wang, Wu, Huang, Lin; NeurIPS 2020,
arXiv 2009.13055), as the official code ``lmbxmu/RBNN`` runs it (``modules/binarized_modules.py``
and the rotation update in ``main.py``).

One binarized conv, with latent weight w (C_out, C_in, k, k) and input a (N, C_in, H, W):

1. w_s = (w - mean_c) / std_c per output channel (unbiased std, gradients through the stats);
   a_s = (a - mean_i) / std_i per sample over (C, H, W) (same).
2. Bi-rotation: each standardised filter is reshaped row-major to X_c in R^{n1 x n2} (n1 the
   largest divisor of n = C_in k k with n1 <= sqrt(n)) and rotated as R1^T X_c R2, i.e. by
   (R1 kron R2)^T; one (R1, R2) pair per layer, shared by all filters. R1, R2 are buffers,
   Haar-random at init, and are re-solved *outside* forward, by :meth:`RBNNConv2d.epoch_start`
   (the code: every epoch before the first training step) or :meth:`RBNNConv2d.step_start`:
   ``rounds`` alternating rounds of B = sign(R1^T X R2) -> Procrustes R1 -> Procrustes R2 on the
   detached w_s, warm-started, written in place (``copy_``) and broadcast from rank 0 under
   torch.distributed (the official code rebinds them inside forward, which loses the update
   under DataParallel in the official ``main.py``).
3. w~ = w_s + alpha (stopgrad(R1^T W_s R2) - w_s), alpha = |sin theta| per output channel,
   theta initialised to pi/2 (so alpha = 1.0 exactly in float32 and the latent weight starts
   with exactly zero loss gradient, as in the code).
4. y = conv(sign(a_s), sign(w~)) * lambda, lambda a learnable per-output-channel scale
   initialised to mean|w| per channel from PyTorch's default conv init (as the code does).

Backward: sign uses the training-aware approximation F'(x; k, t) = max(0, k(sqrt2 t - t^2|x|))
(``rbnn`` surrogate of :mod:`binexp.quant.sign`; weights k = max(1/t, 1), activations k = 1 and
t_a = max(t, 1); t = Tmin (Tmax/Tmin)^(e/E) per epoch), so dL/dw_s = (1 - alpha) F'(w~) dL/db
and no gradient flows through the rotated branch.

theta_stabilize (not in the code, RBNN reviewer 4's stability question): ``clip_grad`` scales
dL/dtheta of a layer to norm <= theta_grad_max_norm before each optimizer step; ``bounded``
projects theta onto [0, pi/2] after each step. Diagnostics: max |theta - pi/2|, ||dL/dtheta||.

Every step of this list is a config knob (a field of :class:`RBNNConfig`); the defaults are the
official code's behaviour.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from binexp.quant.layers import ConvSpec, LinearSpec, QuantConv2d, QuantLayer, QuantLinear, Storage
from binexp.quant.registry import check_choice, register_linear, register_quantizer
from binexp.quant.sign import SurrogateParams, make_surrogate, quantization_error, sign_pm1, surrogate_names

ROTATION_KINDS = ("bi", "full")
UPDATE_INTERVALS = ("epoch", "step")
ROTATION_INITS = ("haar", "identity")
ALPHA_MODES = ("learned", "fixed", "unconstrained")
ROTATED_GRADS = ("detach", "through")
THETA_STABILIZE = ("none", "clip_grad", "bounded")
UPDATE_DTYPES = ("float32", "float64")


@dataclass
class RBNNConfig:
    """Schema of ``quantizer=rbnn`` (conf/quantizer/rbnn.yaml states only what differs: nothing).

    Defaults = the official code (Lin et al., RBNN, NeurIPS 2020): forward
    conv(sign(a_s), sign(w_s + |sin theta| (stopgrad(R1^T W_s R2) - w_s))) * lambda, backward
    the training-aware F'(x; k, t) = max(0, k(sqrt2 t - t^2|x|)) for weights and activations;
    rotation re-solved (3 rounds) before the first training step of every epoch. Every other
    value of a field is an ablation switch."""

    name: str = "rbnn"
    # Seed of the Haar-random R1, R2 init. None (default) = torch.initial_seed(), which `binexp train`
    # sets from the top-level `seed` before the model is built: R is reproducible and identical on
    # every DDP rank, and follows the run's seed as the official code's (unseeded) draw follows the
    # global RNG. An integer pins R independently of the run seed. Layer i draws from hash(seed, i, shape).
    seed: int | None = None
    # --- rotation ---
    rotation: bool = True  # False: no rotation at all (w~ = w_s; no R1, R2, theta)
    # bi: R = R1 kron R2, n1 = the largest divisor of n <= sqrt(n) (code) | full: one n x n rotation
    # per layer (the rebuttal's CIFAR variant)
    rotation_kind: str = "bi"
    # refuse (ValueError at build) a rotation-matrix side larger than this: full rotation of ResNet-20
    # (n <= 576) fits; VGG-small/ResNet-18 (n up to 4608: 21 M floats and an O(n^3) SVD per layer) need a raise
    max_full_rotation_dim: int = 1152
    # epoch: before the first training step of an epoch (code) | step: before every training step
    # (the rebuttal's per-iteration run)
    update_interval: str = "epoch"
    update_frequency: int = 1  # update when epoch (or global step) % this == 0 (code: --rotation_update 1)
    # alternating sign -> Procrustes(R1) -> Procrustes(R2) rounds per update (code: 3); 0 keeps R at
    # its random init (what DataParallel silently did in the official main.py)
    rounds: int = 3
    # haar: Haar-random orthogonal, det +-1 (code: scipy ortho_group) -> ~50% flips |
    # identity: R1 = R2 = I -> only ~5% flips after 3 rounds
    rotation_init: str = "haar"
    update_dtype: str = "float32"  # float32 (code) | float64: precision of the solve; autocast is off there
    # --- self-adjusting rotated weight (Eq. 11) ---
    # learned: alpha = |sin theta|, theta per output channel (code) | fixed: alpha = alpha_value, no
    # parameter | unconstrained: alpha = theta directly, learnable, not clipped to [0, 1], initialised
    # to alpha_value (the reviewers' question on alpha's range)
    alpha_mode: str = "learned"
    theta_init: float = math.pi / 2  # learned: theta0 = pi/2 -> alpha0 = 1.0 exactly in float32 (code since 2020-05-28)
    alpha_value: float = 1.0  # fixed: the constant alpha in [0, 1]; unconstrained: the initial alpha
    # detach: stopgrad on the rotated branch, dL/dw_s = (1-alpha) F' g (code) | through: the gradient
    # also flows through the fixed rotation, dL/dw_s = (1-alpha) F' g + alpha (R1 kron R2) F' g (Eq. 11
    # read literally; required with alpha_mode=fixed, alpha_value=1)
    rotated_grad: str = "detach"
    # none: the code (theta free, alpha = |sin theta| wraps around if theta jumps) | clip_grad: before
    # each optimizer step scale dL/dtheta of each layer to a norm <= theta_grad_max_norm (weight decay
    # is added after, by the optimizer) | bounded: project theta onto [0, pi/2] after each optimizer
    # step, so alpha = sin theta is monotone and saturates at 0 or 1 (theta0 = pi/2 is on the bound).
    # TensorBoard: rbnn_theta_dev_max = max |theta - pi/2|, rbnn_theta_grad_norm(_max)
    theta_stabilize: str = "none"
    theta_grad_max_norm: float = 1.0  # clip_grad: the largest per-layer L2 norm of dL/dtheta (over C_out entries)
    # --- binarization ---
    weight_standardize: bool = True  # w_s = (w - mean) / std per output channel, unbiased std (code, IR-Net style)
    # a_s = (a - mean) / std per sample over (C, H, W), unbiased (code; not in the paper)
    act_standardize: bool = True
    binary_activations: bool = True  # False: full-precision activations a_s (the code's --a32)
    weight_surrogate: str = "rbnn"  # backward of sign(w~); any name from `binexp list surrogate`
    act_surrogate: str = "rbnn"  # backward of sign(a_s); rbnn uses k = 1, t_a = max(t, 1) for activations
    # rbnn's t = T_min (T_max/T_min)^(e/E) (code --Tmin 1e-2, --Tmax 1e1), k = max(1/t, 1)
    surrogate_params: SurrogateParams = field(default_factory=SurrogateParams)

    def __post_init__(self) -> None:
        check_choice("rotation_kind", self.rotation_kind, ROTATION_KINDS)
        check_choice("update_interval", self.update_interval, UPDATE_INTERVALS)
        check_choice("rotation_init", self.rotation_init, ROTATION_INITS)
        check_choice("alpha_mode", self.alpha_mode, ALPHA_MODES)
        check_choice("rotated_grad", self.rotated_grad, ROTATED_GRADS)
        check_choice("update_dtype", self.update_dtype, UPDATE_DTYPES)
        check_choice("theta_stabilize", self.theta_stabilize, THETA_STABILIZE)
        if not (math.isfinite(self.theta_grad_max_norm) and self.theta_grad_max_norm > 0):
            raise ValueError(
                f"quantizer.theta_grad_max_norm must be a finite number > 0, got {self.theta_grad_max_norm}"
            )
        if self.theta_stabilize != "none" and (not self.rotation or self.alpha_mode != "learned"):
            raise ValueError(
                f"quantizer.theta_stabilize={self.theta_stabilize} acts on the learned theta; fix: keep "
                "quantizer.rotation=true and quantizer.alpha_mode=learned, or set quantizer.theta_stabilize=none"
            )
        check_choice("weight_surrogate", self.weight_surrogate, surrogate_names())
        check_choice("act_surrogate", self.act_surrogate, surrogate_names())
        if self.seed is not None and self.seed < 0:
            raise ValueError(f"quantizer.seed must be a non-negative integer or null, got {self.seed}")
        if self.update_frequency < 1:
            raise ValueError(f"quantizer.update_frequency must be >= 1, got {self.update_frequency}")
        if self.rounds < 0:
            raise ValueError(f"quantizer.rounds must be >= 0, got {self.rounds}")
        if self.max_full_rotation_dim < 1:
            raise ValueError(f"quantizer.max_full_rotation_dim must be >= 1, got {self.max_full_rotation_dim}")
        if not math.isfinite(self.theta_init) or not math.isfinite(self.alpha_value):
            raise ValueError("quantizer.theta_init and quantizer.alpha_value must be finite")
        if self.alpha_mode == "fixed" and not 0.0 <= self.alpha_value <= 1.0:
            raise ValueError(f"quantizer.alpha_value must be in [0, 1] with alpha_mode=fixed, got {self.alpha_value}")
        if self.rotation and self.alpha_mode == "fixed" and self.alpha_value == 1.0 and self.rotated_grad == "detach":
            raise ValueError(
                "quantizer.alpha_mode=fixed with alpha_value=1 and rotated_grad=detach gives the latent "
                "weights no gradient at all; fix: set quantizer.rotated_grad=through (rotate-and-binarize) "
                "or an alpha_value < 1"
            )


# -- the math, as plain functions (tested against the reference's golden values) -------------
def bi_rotation_shape(n: int) -> tuple[int, int]:
    """The code's ``get_ab``: n1 = the largest divisor of n with n1 <= floor(sqrt(n)), n2 = n/n1.
    A prime n gives (1, n): R1 is a 1x1 sign and R2 a full n x n rotation (the code's SciPy
    failed there; here it is handled, and ``max_full_rotation_dim`` guards its cost)."""
    if n < 1:
        raise ValueError(f"cannot rotate a filter of {n} weights")
    for n1 in range(math.isqrt(n), 0, -1):
        if n % n1 == 0:
            return n1, n // n1
    return 1, n  # pragma: no cover - n1 = 1 always divides


def haar_orthogonal(n: int, generator: torch.Generator | None = None, dtype=torch.float64) -> Tensor:
    """A Haar-random matrix of O(n) (det = +-1, like scipy's ``ortho_group``): QR of a Gaussian
    matrix with the signs of R's diagonal moved into Q (Mezzadri 2007)."""
    z = torch.randn(n, n, generator=generator, dtype=torch.float64)
    q, r = torch.linalg.qr(z)
    d = torch.diagonal(r)
    q = q * torch.where(d >= 0, 1.0, -1.0).to(q.dtype)
    return q.to(dtype)


def rotate(x: Tensor, r1: Tensor, r2: Tensor) -> Tensor:
    """R1^T X_c R2 for every filter X_c of ``x`` (C, n1, n2), batched (one bmm each side)."""
    return torch.matmul(torch.matmul(r1.transpose(0, 1), x), r2)


def mean_cosine_to_sign(y: Tensor) -> Tensor:
    """Mean over filters of cos(y_c, sign(y_c)) = ||y_c||_1 / (||y_c||_2 sqrt(n))."""
    y = y.flatten(1)
    return (y.abs().sum(1) / (y.norm(dim=1) * math.sqrt(y.shape[1])).clamp_min(1e-30)).mean()


@dataclass
class RotationResult:
    r1: Tensor
    r2: Tensor
    objectives: Tensor  # (rounds + 1,): J before the update and after each round
    rotated: Tensor  # R1^T X_c R2 with the final R1, R2, (C, n1, n2)
    rotated_before: Tensor  # with the initial R1, R2
    singular_values: list[tuple[Tensor, Tensor]]  # (S of D1, S of D2) per round


def rotation_rounds(x: Tensor, r1: Tensor, r2: Tensor, rounds: int = 3) -> RotationResult:
    """The code's alternating solver (official ``main.py``, the per-epoch update before the first
    step; paper Sec. 3.2), batched over filters, on ``x`` (C, n1, n2).

    Each round: B_c = sign(R1^T X_c R2); D1 = sum_c B_c R2^T X_c^T = U1 S1 V1^T, R1 = V1 U1^T;
    D2 = sum_c X_c^T R1 B_c (new R1, old B) = U2 S2 V2^T, R2 = U2 V2^T. Each step maximises
    J = sum_c tr(B_c^T R1^T X_c R2), so J = sum_c ||R1^T X_c R2||_1 never decreases.
    ``torch.linalg.svd`` returns V^T (the code's ``torch.svd`` returned V)."""
    objectives = []
    svals = []
    y = rotate(x, r1, r2)
    first = y
    for _ in range(rounds):
        objectives.append(y.abs().sum())
        b = sign_pm1(y)
        d1 = torch.einsum("cik,cjk->ij", b, torch.matmul(x, r2))
        u1, s1, v1h = torch.linalg.svd(d1)
        r1 = v1h.transpose(0, 1) @ u1.transpose(0, 1)
        d2 = torch.einsum("cji,cjl->il", x, torch.matmul(r1, b))
        u2, s2, v2h = torch.linalg.svd(d2)
        r2 = u2 @ v2h
        svals.append((s1, s2))
        y = rotate(x, r1, r2)
    objectives.append(y.abs().sum())
    return RotationResult(r1, r2, torch.stack(objectives), y, first, svals)


def _centered_std(x: Tensor, dims: tuple[int, ...]) -> tuple[Tensor, Tensor]:
    """(x - mean, unbiased std) over ``dims``, two-pass (``Tensor.std`` is several times slower
    on CPU), std clamped to the smallest normal so a constant slice gives 0, not NaN."""
    d = x - x.mean(dim=dims, keepdim=True)
    n = math.prod([x.shape[i] for i in dims])  # a list: a generator breaks torch.compile graphs
    norm = torch.linalg.vector_norm(d, dim=dims, keepdim=True)
    return d, (norm / math.sqrt(max(n - 1, 1))).clamp_min(torch.finfo(x.dtype).tiny)


def standardize(x: Tensor, dims: tuple[int, ...]) -> Tensor:
    """(x - mean) / std over ``dims`` with the unbiased std, gradients through both statistics.
    A constant slice (std = 0) maps to 0 (sign +1) instead of NaN."""
    d, std = _centered_std(x, dims)
    return d / std


class _StandardizedSign(torch.autograd.Function):
    """sign((x - mean) / std) per sample over ``dims`` ((C, H, W) of a conv input, the features of
    a token for a linear layer) with the surrogate's gradient, and the
    standardisation's exact backward fused into one expression (autograd through
    :func:`standardize` followed by the surrogate gives the same numbers, with more passes):

        a_s = (x - mu) / sigma, g_s = g F'(a_s),
        dL/dx = (g_s - mean(g_s) - a_s sum(g_s a_s) / (n - 1)) / sigma   (unbiased sigma)."""

    @staticmethod
    def forward(ctx, x: Tensor, surrogate, dims: tuple[int, ...] = (1, 2, 3)) -> Tensor:
        d, std = _centered_std(x, dims)
        ctx.save_for_backward(d, std)
        ctx.surrogate = surrogate
        ctx.dims = dims
        return sign_pm1(d)  # = sign(a_s), sigma > 0

    @staticmethod
    def backward(ctx, grad: Tensor):
        d, std = ctx.saved_tensors
        a_s = d / std
        g_s = ctx.surrogate.derivative(a_s) * grad  # a fresh tensor: the in-place ops below are safe
        dims = ctx.dims
        n = math.prod([d.shape[i] for i in dims])
        mean_g = g_s.mean(dim=dims, keepdim=True)
        proj = (g_s * a_s).sum(dim=dims, keepdim=True) / max(n - 1, 1)
        return g_s.sub_(mean_g).sub_(a_s.mul_(proj)).div_(std), None, None


def layer_seed(seed: int, index: int, shape: tuple[int, ...]) -> int:
    """A 63-bit generator seed for layer ``index`` of a run seeded with ``seed``."""
    key = f"rbnn:{seed}:{index}:{'x'.join(map(str, shape))}".encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "little") & ((1 << 63) - 1)


# -- the layer --------------------------------------------------------------------------------
class RBNNBinary(QuantLayer):
    """RBNN binarization (Lin et al., "Rotated Binary Neural Network", NeurIPS 2020), with the
    official code's defaults, whatever the geometry (:class:`RBNNConv2d`, :class:`RBNNLinear`).

    Forward: y = conv(sign(a_s), sign(w~)) * lambda, with w_s, a_s the per-channel / per-sample
    standardised (unbiased std) weight and input, w~ = w_s + alpha (stopgrad(R1^T W_s R2) - w_s),
    alpha = |sin theta| per output channel (theta0 = pi/2), sign(0) = +1, lambda a learnable
    per-channel scale; R1, R2 fixed within the forward (updated by ``epoch_start``/``step_start``).
    Backward: dL/da_s = g F'_a(a_s), dL/dw_s = (1 - alpha) g F'_w(w~) (rotated branch detached),
    F'(x; k, t) = max(0, k(sqrt2 t - t^2 |x|)) (weights k = max(1/t, 1); activations k = 1,
    t_a = max(t, 1)), then through the standardisation statistics; dL/dtheta =
    sign(sin theta) cos theta <rotated - w_s, g F'_w(w~)>; dL/dlambda from the conv output.
    Paper: Lin et al., NeurIPS 2020, Sec. 3.2-3.4 and Eq. 11."""

    R1: Tensor  # buffers (present when cfg.rotation)
    R2: Tensor
    rotation_updates: Tensor
    _stat_objective: Tensor
    _stat_update: Tensor
    _stat_theta_grad: Tensor
    theta: nn.Parameter | None

    def __init__(self, cfg: RBNNConfig, *geometry, layer_index: int = 0) -> None:
        super().__init__(*geometry)
        self.cfg = cfg
        self.layer_index = layer_index
        self._make_latent_weight()
        out_channels = self.out_channels
        shape = "x".join(map(str, self.weight.shape))
        # lambda from PyTorch's default init, before any architecture re-init (as the code does);
        # (C_out, 1, 1) against a conv output, (out,) against a linear one
        lam = self.weight.detach().abs().mean(dim=self.weight_dims)
        self.scale = nn.Parameter(lam.view(out_channels, *([1] * (len(self.weight_dims) - 1))).clone())
        self.weight_sign = make_surrogate(cfg.weight_surrogate, "weight", cfg.surrogate_params)
        self.act_sign = (
            make_surrogate(cfg.act_surrogate, "activation", cfg.surrogate_params) if cfg.binary_activations else None
        )
        n = self.weight[0].numel()
        self.n1, self.n2 = bi_rotation_shape(n) if cfg.rotation_kind == "bi" else (1, n)
        self.rotation = cfg.rotation
        if self.rotation:
            side = max(self.n1, self.n2)
            if side > cfg.max_full_rotation_dim:
                why, fix = "", "use quantizer.rotation_kind=bi, or raise quantizer.max_full_rotation_dim"
                if cfg.rotation_kind == "bi":  # n prime (or nearly): n1 x n2 = 1 x n, a full rotation in disguise
                    why = (
                        f" (the largest divisor of n = {n} up to sqrt(n) is {self.n1}, "
                        f"so R1 kron R2 is {self.n1} x {self.n2})"
                    )
                    fix = "raise quantizer.max_full_rotation_dim, or quantizer.rotation=false"
                raise ValueError(
                    f"RBNN {cfg.rotation_kind} rotation of a {shape} "
                    f"layer needs a {side}x{side} rotation matrix{why} ({side * side:,} floats, an O({side}^3) SVD per "
                    f"update), more than quantizer.max_full_rotation_dim={cfg.max_full_rotation_dim}; fix: {fix}"
                )
            r1, r2 = self._initial_rotations()
            self.register_buffer("R1", r1)
            self.register_buffer("R2", r2)
            self.register_buffer("rotation_updates", torch.zeros((), dtype=torch.long))
            if cfg.alpha_mode == "learned":
                self.theta = nn.Parameter(
                    torch.full((out_channels, *([1] * len(self.weight_dims))), float(cfg.theta_init))
                )
            elif cfg.alpha_mode == "unconstrained":
                self.theta = nn.Parameter(
                    torch.full((out_channels, *([1] * len(self.weight_dims))), float(cfg.alpha_value))
                )
            else:
                self.theta = None
            # diagnostics of the last update (not checkpointed; read only by extra_stats)
            self.register_buffer("_stat_objective", torch.full((cfg.rounds + 1,), float("nan")), persistent=False)
            self.register_buffer("_stat_update", torch.full((4,), float("nan")), persistent=False)
            # ||dL/dtheta|| before any clipping: the last optimizer step's, and the largest since the epoch began
            self.register_buffer("_stat_theta_grad", torch.full((2,), float("nan")), persistent=False)
        self._eval_cache: tuple | None = None
        self._last_step_update: int | None = None  # step mode: the global step R was last solved for
        self._rotated_epoch: int | None = None  # epoch mode: the epoch whose start update has been applied

    def _initial_rotations(self) -> tuple[Tensor, Tensor]:
        if self.cfg.rotation_init == "identity":
            return torch.eye(self.n1), torch.eye(self.n2)
        base = self.cfg.seed if self.cfg.seed is not None else torch.initial_seed()
        shape = tuple(self.weight.shape)
        g = torch.Generator().manual_seed(layer_seed(int(base), self.layer_index, shape))
        return haar_orthogonal(self.n1, g, torch.float32), haar_orthogonal(self.n2, g, torch.float32)

    # -- forward pieces -----------------------------------------------------------------------
    def standardized_weight(self) -> Tensor:
        return standardize(self.weight, self.weight_dims) if self.cfg.weight_standardize else self.weight

    def alpha(self) -> Tensor | float:
        """alpha per output channel, (C_out, 1, 1, 1) (a float in ``fixed`` mode)."""
        if self.cfg.alpha_mode == "fixed" or self.theta is None:
            return self.cfg.alpha_value
        return self.theta.sin().abs() if self.cfg.alpha_mode == "learned" else self.theta

    def rotated(self, w_s: Tensor) -> Tensor:
        """(R1 kron R2)^T applied to every filter of the conv-shaped ``w_s``."""
        x = w_s.reshape(self.out_channels, self.n1, self.n2)
        return rotate(x, self.R1.to(x.dtype), self.R2.to(x.dtype)).reshape(w_s.shape)

    def mixed_weight(self, w_s: Tensor) -> Tensor:
        """w~ = w_s + alpha (rot - w_s): the tensor whose sign is the binary weight (Eq. 11)."""
        if not self.rotation:
            return w_s
        if self.cfg.rotated_grad == "detach":
            with torch.no_grad():
                rot = self.rotated(w_s.detach())
        else:
            rot = self.rotated(w_s)
        return w_s + self.alpha() * (rot - w_s)

    def _state_key(self) -> tuple:
        tensors = [self.weight] + ([self.R1, self.R2] if self.rotation else [])
        theta = getattr(self, "theta", None)
        if theta is not None:
            tensors.append(theta)
        return (torch.is_inference_mode_enabled(),) + tuple((t._version, t.data_ptr(), t.dtype) for t in tensors)

    def quantized_weight(self) -> Tensor:
        # the weight path is small: keep it in the weight's precision under AMP autocast
        with torch.autocast(self.weight.device.type, enabled=False):
            if torch.is_grad_enabled():
                self._eval_cache = None
                return self.weight_sign(self.mixed_weight(self.standardized_weight()))
            if torch.compiler.is_compiling():  # a compiled graph recomputes it rather than guard on a cache
                return sign_pm1(self.mixed_weight(self.standardized_weight()))
            # no autograd (validation, inference): the binary weight only changes with w, R, theta
            key = self._state_key()
            if self._eval_cache is None or self._eval_cache[0] != key:
                self._eval_cache = (key, sign_pm1(self.mixed_weight(self.standardized_weight())))
            return self._eval_cache[1]

    def quantize_input(self, x: Tensor) -> Tensor:
        if not self.cfg.act_standardize:
            return self.act_sign(x) if self.act_sign is not None else x
        if self.act_sign is None:  # a32: full-precision standardised activations
            return standardize(x, self.input_dims)
        if not torch.is_grad_enabled():  # sign(a_s) = sign(x - mean): no std needed
            return sign_pm1(x - x.mean(dim=self.input_dims, keepdim=True))
        return _StandardizedSign.apply(x, self.act_sign, self.input_dims)

    def scale_output(self, out: Tensor, x: Tensor) -> Tensor:
        return out * self.scale

    # -- rotation updates (outside forward) ---------------------------------------------------
    @torch.no_grad()
    def update_rotation(self) -> RotationResult:
        """One rotation update: ``rounds`` alternating rounds on the detached standardised
        weight, warm-started from the current R1, R2, written in place; under torch.distributed
        rank 0's result is broadcast so every rank holds the same R1, R2."""
        dtype = torch.float64 if self.cfg.update_dtype == "float64" else torch.float32
        device = self.weight.device
        with torch.autocast(device_type=device.type, enabled=False):
            x = self.standardized_weight().detach().to(dtype).reshape(self.out_channels, self.n1, self.n2)
            res = rotation_rounds(x, self.R1.to(dtype), self.R2.to(dtype), self.cfg.rounds)
            self.R1.copy_(res.r1)
            self.R2.copy_(res.r2)
            if (
                torch.distributed.is_available()
                and torch.distributed.is_initialized()
                and torch.distributed.get_world_size() > 1
            ):
                torch.distributed.broadcast(self.R1, src=0)
                torch.distributed.broadcast(self.R2, src=0)
            self.rotation_updates.add_(1)
            sx, s_after, s_before = sign_pm1(x), sign_pm1(res.rotated), sign_pm1(res.rotated_before)
            self._stat_objective.copy_(res.objectives)
            self._stat_update.copy_(
                torch.stack(
                    [
                        mean_cosine_to_sign(res.rotated_before),
                        mean_cosine_to_sign(res.rotated),
                        (s_after != sx).to(dtype).mean(),
                        (s_after != s_before).to(dtype).mean(),
                    ]
                )
            )
        self._eval_cache = None
        return res

    @torch.no_grad()
    def epoch_start(self, epoch: int, max_epochs: int, lr_decays: int = 0) -> None:
        """t, k of the surrogates for ``epoch``; the epoch's rotation update only once per epoch
        (``_rotated_epoch``): a mid-epoch resume re-enters the epoch through
        :meth:`resume_epoch`, which marks it as rotated (R1, R2 come from the checkpoint)."""
        super().epoch_start(epoch, max_epochs, lr_decays)  # t, k of the surrogates
        if getattr(self, "theta", None) is not None:
            self._stat_theta_grad[1].fill_(float("nan"))
        if self._rotated_epoch == epoch:
            return
        self._rotated_epoch = epoch
        if self.rotation and self.cfg.update_interval == "epoch" and epoch % self.cfg.update_frequency == 0:
            self.update_rotation()

    @torch.no_grad()
    def resume_epoch(self, epoch: int, max_epochs: int, lr_decays: int = 0) -> None:
        """The epoch's rotation update is already in the restored R1, R2: mark it done."""
        self._rotated_epoch = epoch
        super().resume_epoch(epoch, max_epochs, lr_decays)

    @torch.no_grad()
    def step_start(self, epoch: int, step: int) -> None:
        """``update_interval=step``: re-solve R before every ``update_frequency``-th optimizer step
        (``step`` = the global step), once per step: with gradient accumulation Lightning calls
        this for every micro-batch with the same global step, and R must stay fixed within a step."""
        if not (self.rotation and self.cfg.update_interval == "step") or step == self._last_step_update:
            return
        self._last_step_update = step
        if step % self.cfg.update_frequency == 0:
            self.update_rotation()

    # -- theta: its gradient and the stabilised variants (theta_stabilize) ----------------------
    @torch.no_grad()
    def before_optimizer_step(self) -> None:
        """Record ||dL/dtheta|| (after backward, before the step; identical on every DDP rank),
        then with ``theta_stabilize=clip_grad`` scale it to at most ``theta_grad_max_norm``:
        g <- g * min(1, max_norm / ||g||)."""
        theta = getattr(self, "theta", None)
        if theta is None or theta.grad is None:
            return
        norm = torch.linalg.vector_norm(theta.grad.float())
        self._stat_theta_grad[0].copy_(norm)
        self._stat_theta_grad[1].copy_(torch.fmax(self._stat_theta_grad[1], norm))
        if self.cfg.theta_stabilize == "clip_grad":
            theta.grad.mul_((self.cfg.theta_grad_max_norm / norm.clamp_min(1e-12)).clamp(max=1.0).to(theta.grad.dtype))

    @torch.no_grad()
    def step_end(self, epoch: int, step: int) -> None:
        """``theta_stabilize=bounded``: project theta onto [0, pi/2] after every optimizer step,
        so alpha = |sin theta| = sin theta is monotone in theta and a large step saturates at
        alpha = 0 or 1 instead of wrapping around (theta0 = pi/2 lies on the bound: the start is
        the code's)."""
        theta = getattr(self, "theta", None)
        if self.cfg.theta_stabilize == "bounded" and theta is not None:
            theta.clamp_(min=0.0, max=math.pi / 2)

    # -- diagnostics ----------------------------------------------------------------------------
    def act_latent(self, x: Tensor) -> Tensor | None:
        """a_s, the per-sample standardised input whose sign is the binary activation."""
        if self.act_sign is None:
            return None
        return standardize(x, self.input_dims) if self.cfg.act_standardize else x

    def penalty_weight(self) -> Tensor:
        """w~ (w_s with the rotation off) with its graph: the angle penalty reaches w and theta."""
        with torch.autocast(self.weight.device.type, enabled=False):
            return self.mixed_weight(self.standardized_weight())

    @torch.no_grad()
    def final_values(self) -> dict[str, float]:
        """``alpha_final``: mean over output channels of alpha (Eq. 11) for metrics.json."""
        return {"alpha_final": float(self._alpha_tensor().float().mean())} if self.rotation else {}

    @torch.no_grad()
    def latent_weight(self) -> Tensor:
        """w~, the real tensor whose sign is the binary weight (the rotated, mixed, standardised
        weight), so angular bias and quantization error are measured where RBNN acts."""
        return self.mixed_weight(self.standardized_weight()).detach()

    def _alpha_tensor(self) -> Tensor:
        a = self.alpha()
        return a.detach().flatten() if torch.is_tensor(a) else torch.full((self.out_channels,), float(a))

    @torch.no_grad()
    def extra_stats(self) -> dict[str, Tensor]:
        stats: dict[str, Tensor] = {}
        ws, wa = self.weight_sign, self.act_sign
        for prefix, s in (("rbnn_", ws), ("rbnn_act_", wa)):
            for key in ("t", "k"):
                if s is not None and isinstance(getattr(s, key, None), Tensor):
                    stats[f"{prefix}{key}"] = getattr(s, key).detach().clone()
        if not self.rotation:
            return stats
        stats["rbnn_alpha_mean"] = self._alpha_tensor().mean()
        stats["rbnn_rotation_updates"] = self.rotation_updates.detach().float()
        # Eq. 11 side by side: optimal-scale quantization error of w_s, of R1^T W_s R2 and of w~
        w_s = self.standardized_weight().detach()
        stats["quant_error_unrotated"] = quantization_error(w_s)
        stats["quant_error_rotated"] = quantization_error(self.rotated(w_s))
        stats["quant_error_mixed"] = quantization_error(self.mixed_weight(w_s))
        theta = getattr(self, "theta", None)
        if theta is not None:
            stats["rbnn_theta_dev_max"] = (theta.detach().float() - math.pi / 2).abs().max()
            if bool(torch.isfinite(self._stat_theta_grad[0])):
                stats["rbnn_theta_grad_norm"] = self._stat_theta_grad[0].clone()
            if bool(torch.isfinite(self._stat_theta_grad[1])):
                stats["rbnn_theta_grad_norm_max"] = self._stat_theta_grad[1].clone()
        if int(self.rotation_updates) > 0 and bool(torch.isfinite(self._stat_update).all()):
            for r, value in enumerate(self._stat_objective):
                stats[f"rbnn_objective_round{r}"] = value.clone()
            cos_before, cos_after, flips, update_flips = self._stat_update
            stats.update(
                {
                    "rbnn_cos_before": cos_before.clone(),
                    "rbnn_cos_after": cos_after.clone(),
                    "rbnn_rotation_flips": flips.clone(),
                    "rbnn_update_flips": update_flips.clone(),
                }
            )
        return stats

    @torch.no_grad()
    def histograms(self) -> dict[str, Tensor]:
        hists = {"latent_weight": self.latent_weight()}
        if self.rotation:
            hists["rbnn_alpha"] = self._alpha_tensor()
        return hists

    def storage(self) -> Storage:
        """1 bit per weight and lambda (C_out floats) at inference; R1, R2 and theta only in
        training (sign(w~) is precomputed for deployment)."""
        training: dict[str, int] = {}
        if self.rotation:
            training = {"R1": self.n1 * self.n1, "R2": self.n2 * self.n2}
            theta = getattr(self, "theta", None)
            if theta is not None:
                training["theta"] = theta.numel()
        return Storage(
            weights=self.num_weights,
            weight_bits=self.num_weights,
            inference_floats=self.out_channels,
            training_floats=training,
        )

    def report(self) -> dict:
        if not self.rotation:
            return {"rotation": "off"}
        return {
            "rotation": f"{self.cfg.rotation_kind} {self.n1}x{self.n2}",
            "update": f"every {self.cfg.update_frequency} {self.cfg.update_interval}(s)",
        }

    def extra_repr(self) -> str:
        rot = f", rotation={self.cfg.rotation_kind}({self.n1}x{self.n2})" if self.rotation else ", rotation=off"
        return super().extra_repr() + rot + f", alpha={self.cfg.alpha_mode}"


class RBNNConv2d(RBNNBinary, QuantConv2d):
    """RBNN binary convolution (the rule of :class:`RBNNBinary`)."""

    def __init__(
        self,
        cfg: RBNNConfig,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        layer_index: int = 0,
    ) -> None:
        super().__init__(cfg, in_channels, out_channels, kernel_size, stride, padding, layer_index=layer_index)


class RBNNLinear(RBNNBinary, QuantLinear):
    """RBNN binary linear layer (binexp's extension: the paper and the official code binarize
    convolutions only): each weight row (n = in_features) is standardised, rotated by R1 kron R2
    (n1 x n2 = the bi-rotation shape of n) and mixed exactly as a conv filter; the input is
    standardised per token (over its features) instead of per sample over (C, H, W);
    y = (sign(a_s) @ sign(w~)^T) * lambda + b with lambda per output row and b full precision."""

    def __init__(
        self, cfg: RBNNConfig, in_features: int, out_features: int, bias: bool = True, layer_index: int = 0
    ) -> None:
        super().__init__(cfg, in_features, out_features, bias, layer_index=layer_index)


@register_quantizer(
    "rbnn", RBNNConfig, "RBNN: bi-rotation R1 kron R2 + |sin theta| mix, standardised signs, training-aware surrogate"
)
def build_rbnn_conv(cfg: RBNNConfig, spec: ConvSpec) -> RBNNConv2d:
    """Forward conv(sign(a_s), sign(w~)) * lambda; backward RBNN's F'(x; k, t); Lin et al., NeurIPS 2020.
    ``spec.index`` (the conv's position in its network) seeds R's init with (seed, index, shape),
    so every rank builds the same rotations."""
    return RBNNConv2d(
        cfg, spec.in_channels, spec.out_channels, spec.kernel_size, spec.stride, spec.padding, layer_index=spec.index
    )


@register_linear("rbnn")
def build_rbnn_linear(cfg: RBNNConfig, spec: LinearSpec) -> RBNNLinear:
    """RBNN's rule on a linear layer (:class:`RBNNLinear`); ``spec.index`` seeds R as for a conv."""
    return RBNNLinear(cfg, spec.in_features, spec.out_features, spec.bias, layer_index=spec.index)
