"""FleXOR (Lee, Kwon, Kim, Jeon, Park, Yun, "FleXOR: Trainable Fractional Quantization",
NeurIPS 2020): sub-1-bit weights through a fixed XOR-gate network.

Per bit plane i = 1..q the layer stores ``n_slices = ceil(n / N_out)`` slices of N_in
*encrypted* weights x^e (real-valued while training, only their signs at inference). A fixed
random 0/1 matrix M (N_out x N_in, N_tap ones per row, row r = XOR gate r) decrypts each
slice into N_out binary weights:

* forward: s = sign(x^e) with sign(0) = +1, then per row r of M the +-1 XOR product
  y_r = (-1)^(taps_r - 1) * prod_{j: M_rj = 1} s_j, which is bit-exactly the GF(2) decryption
  y = M x mod 2 under 0 <-> -1, 1 <-> +1 (paper Eqs. 2/4, Table 4); the decrypted bits are
  concatenated, the surplus of the last slice dropped, and reshaped to the conv weight in the
  paper's TF order [k, k, C_in, C_out] (``flatten=tf``) or PyTorch's [C_out, C_in, k, k]
  (``torch``); ``flatten=filter`` chunks each output filter on its own, padded to a multiple of
  N_out, so no slice spans two filters (the padding's encrypted bits are stored and counted);
  W = sum_i alpha_i (.) B_i with alpha trainable per output channel per plane (init 0.2).
* backward (``scheme=flexor``, Eqs. 5-6): dy_r/dx_j = (-1)^(taps_r - 1) S (1 - tanh^2(S x_j))
  prod_{k != j} sign(x_k), summed over the gates x_j feeds; obtained by passing every encrypted
  weight through the shared ``scaled_tanh`` surrogate and multiplying with autograd.
  ``scheme=analog``: the exact derivative of the analog XOR (-1)^(t-1) prod tanh(S x_k)
  (Eq. 3), whose output is quantized with an identity STE; ``scheme=ste``: derivative 1 for
  each sign (Fig. 5's three training schemes).

Training techniques (Sec. 4 / appendix): S_tanh (default 10) with a linear warm-up, S_tanh x2
at each multistep LR decay, clipping x^e to +-clip_factor/S_tanh after every optimizer step;
LR warm-up is the schedule's ``warmup_epochs``; ``weight_decay_on`` decays every parameter or only
the encrypted weights (the paper leaves it open). See :class:`FlexorConfig` for every
field and which choices the paper leaves open.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import torch
from torch import Tensor, nn

from binexp.quant import gf2
from binexp.quant.layers import ConvSpec, LinearSpec, QuantConv2d, Storage
from binexp.quant.registry import check_choice, register_linear, register_quantizer
from binexp.quant.sign import ScaledTanh, SurrogateParams, make_surrogate, sign_pm1, surrogate_names

XOR_POLICIES = ("unconstrained", "no_unused", "full_rank", "bernoulli", "cyclic")
PLANE_MATRICES = ("per_plane", "shared")
FLATTEN_ORDERS = ("tf", "torch", "filter")
SCHEMES = ("flexor", "analog", "ste")
ALPHA_SHAPES = ("channel", "layer")
ALPHA_INIT_RULES = ("constant", "fan_in")
WEIGHT_DECAY_ON = ("all", "encrypted")


@dataclass
class FlexorConfig:
    """FleXOR quantizer options (``quantizer=flexor``; conf/quantizer/flexor.yaml states only what
    differs from these defaults).

    Forward: W = sum_i alpha_i (.) XOR_M(sign(x^e_i)) (bit-exact GF(2) decryption, sign(0)=+1).
    Per bit plane, ceil(n/N_out) slices of N_in real "encrypted" weights; a fixed random XOR
    network M (N_out x N_in, N_tap ones per row) decrypts the signs of each slice into N_out
    binary weights. Bits per weight = q * N_in * ceil(n/N_out) / n (metrics.json:
    bits_per_weight; with the 32-bit alphas: bits_per_weight_with_scales).
    Backward: per encrypted weight S_tanh (1 - tanh^2(S_tanh x)) times the signs of the gate's
    other inputs, summed over its gates (``scheme`` picks Fig. 5's alternatives).
    [uncertain] marks choices the paper (arXiv:2009.04690) leaves open; the default is stated with
    the reason (the unofficial reimplementation's choice where there is one).
    Paper: Lee et al., "FleXOR: Trainable Fractional Quantization", NeurIPS 2020."""

    name: str = "flexor"
    # N_in: encrypted bits per slice and plane (12/20 = 0.6 bit); N_in <= N_out unless allow_over_one_bit
    n_in: int = 12
    n_out: int = 20  # N_out: weights decrypted per slice (Table 1: 20; appendix Table 5: 10)
    # Table 2: one N_in per network stage, e.g. [19, 16, 7] for ResNet-20; None = n_in everywhere
    n_in_per_stage: list[int] | None = None
    # N_in > N_out stores more than one bit per weight (no compression): refused unless true
    allow_over_one_bit: bool = False
    n_tap: int = 2  # ones per row of M (XOR fan-in); the CIFAR/ImageNet experiments use 2
    q: int = 1  # bit planes (Table 6 uses 2); each has its own encrypted weights and alpha
    # seed of M; None = the run's top-level `seed` (read as torch.initial_seed(), which seed_everything
    # sets before the model is built); an integer (or ${seed}) pins it. M is a pure function of
    # (seed, n_in, n_out, n_tap, plane, xor_policy): layers with the same settings share the same matrix.
    seed: int | None = None
    # [uncertain] how M is drawn: unconstrained (N_tap distinct columns per row, uniformly; rows may
    # repeat and columns go unused - as the unofficial reimplementation) | no_unused (every input
    # feeds >= 1 gate) | full_rank (GF(2) rank = N_in - 1 for even N_tap, the maximum) | bernoulli
    # (entries Bernoulli(1/2), n_tap ignored: the paper's MNIST Fig. 4 matrices) | cyclic (structured,
    # no randomness: row r taps (r + j*d) mod N_in, j < N_tap, d = 1 + r // N_in - cyclic shifts of
    # one pattern as in quasi-cyclic codes; every input feeds a gate once N_out >= N_in)
    xor_policy: str = "unconstrained"
    # [uncertain] per_plane: plane i uses its own M (reimplementation) | shared: one M for all planes
    plane_matrices: str = "per_plane"
    # slice order: tf = [k, k, C_in, C_out], C_out fastest (the paper's TensorFlow layout, a slice
    # spans output channels) | torch = [C_out, C_in, k, k] (the reimplementation) | filter = each
    # output filter chunked on its own in [C_in, k, k] order, padded to a multiple of N_out, so no
    # slice spans two filters (the padding's encrypted bits are stored and counted in bits_per_weight)
    flatten: str = "tf"
    # training scheme (Fig. 5): flexor (sign forward, S(1-tanh^2(Sx)) x other signs backward) |
    # analog (exact gradient of prod tanh(S x), output quantized by an identity STE) | ste (sign
    # forward, identity backward per sign)
    scheme: str = "flexor"
    s_tanh: float = 10.0  # S_tanh of the scaled-tanh surrogate (CIFAR 10, MNIST 100)
    # linear S_tanh warm-up from s_tanh_start to s_tanh over this many epochs (500-epoch recipe: 100)
    s_tanh_warmup_epochs: int = 0
    s_tanh_start: float = 5.0  # [uncertain] warm-up start value: unknown in the paper; 5 as the reimplementation
    # S_tanh x2 at every multistep LR decay (200-epoch recipe); [uncertain] whether the 500-epoch
    # recipe does it too - on by default everywhere
    s_tanh_double_at_decay: bool = True
    # [uncertain] clip encrypted weights to +-clip_factor/S_tanh after every optimizer step (the
    # training technique evaluated in appendix Fig. 15b); on by default
    clip_encrypted: bool = True
    clip_factor: float = 2.0  # the clip bound is clip_factor / S_tanh (paper: 2/S_tanh)
    alpha_init: float = 0.2  # initial alpha ("all scaling factors initialized to 0.2")
    # constant: every alpha = alpha_init | fan_in: alpha = sqrt(2 / (C_in k k)) per layer (Kaiming's
    # std for +-1 weights; for networks without BatchNorm such as LeNet-5, where alpha = 0.2
    # collapses training - the reimplementation's deviation)
    alpha_init_rule: str = "constant"
    # [uncertain] alpha granularity: channel (one per output channel per plane, the reimplementation)
    # | layer (one per plane)
    alpha_shape: str = "channel"
    # [uncertain] encrypted weights ~ N(0, std^2) (reimplementation; the paper's is unknown)
    encrypted_init_std: float = 1e-3
    # [uncertain] which parameters get schedule.weight_decay: all (every parameter, as the
    # reimplementation) | encrypted (only the encrypted weights; alpha, BN, the FP stem and classifier
    # get none). The paper motivates S_tanh doubling by weight decay shrinking the encrypted weights
    # but does not say whether anything else is decayed.
    weight_decay_on: str = "all"
    # surrogate of each encrypted sign inside the digital XOR; None = the scheme's own (flexor:
    # scaled_tanh with s_tanh; ste: ste) | any of `binexp list surrogate` (e.g. approx_sign), with
    # its knobs in surrogate_params. Not with scheme=analog (no per-sign surrogate there)
    weight_surrogate: str | None = None
    # FleXOR keeps activations full precision; True = sign(x) before each FleXOR conv
    binary_activations: bool = False
    act_surrogate: str = "clipped_ste"  # surrogate of sign(x) when binary_activations (`binexp list surrogate`)
    # knobs of act_surrogate and weight_surrogate (S_tanh of the default weight surrogate is `s_tanh` above)
    surrogate_params: SurrogateParams = field(default_factory=SurrogateParams)

    def __post_init__(self) -> None:
        check_choice("xor_policy", self.xor_policy, XOR_POLICIES)
        check_choice("plane_matrices", self.plane_matrices, PLANE_MATRICES)
        check_choice("flatten", self.flatten, FLATTEN_ORDERS)
        check_choice("scheme", self.scheme, SCHEMES)
        check_choice("alpha_shape", self.alpha_shape, ALPHA_SHAPES)
        check_choice("alpha_init_rule", self.alpha_init_rule, ALPHA_INIT_RULES)
        check_choice("weight_decay_on", self.weight_decay_on, WEIGHT_DECAY_ON)
        check_choice("act_surrogate", self.act_surrogate, surrogate_names())
        if self.weight_surrogate is not None:
            check_choice("weight_surrogate", self.weight_surrogate, surrogate_names())
            if self.scheme == "analog":
                raise ValueError(
                    "quantizer.weight_surrogate applies to the digital XOR's signs; fix: use scheme=flexor "
                    "(or ste) with it, or weight_surrogate=null with scheme=analog"
                )
        for key in ("n_out", "n_tap", "q"):
            if getattr(self, key) < 1:
                raise ValueError(f"quantizer.{key} must be >= 1, got {getattr(self, key)}")
        n_ins = [self.n_in] if self.n_in_per_stage is None else [self.n_in, *self.n_in_per_stage]
        for n_in in n_ins:
            if n_in < 1:
                raise ValueError(f"quantizer.n_in and n_in_per_stage entries must be >= 1, got {n_in}")
            if self.xor_policy != "bernoulli" and self.n_tap > n_in:
                raise ValueError(f"quantizer.n_tap={self.n_tap} exceeds n_in={n_in}; fix: n_tap <= n_in")
            if n_in > self.n_out and not self.allow_over_one_bit:
                raise ValueError(
                    f"quantizer.n_in={n_in} > n_out={self.n_out} stores {n_in / self.n_out:.2f} bits per weight, more "
                    f"than plain binary weights; "
                    f"fix: n_in <= n_out, or quantizer.allow_over_one_bit=true to run it anyway"
                )
            if self.xor_policy == "no_unused" and self.n_out * self.n_tap < n_in:
                raise ValueError(
                    f"quantizer.xor_policy=no_unused needs n_out*n_tap >= n_in, got {self.n_out}*{self.n_tap} < {n_in}"
                )
        if self.n_in_per_stage is not None and len(self.n_in_per_stage) == 0:
            raise ValueError("quantizer.n_in_per_stage must be null or a non-empty list")
        for key in ("s_tanh", "s_tanh_start", "clip_factor", "encrypted_init_std"):
            if not getattr(self, key) > 0:
                raise ValueError(f"quantizer.{key} must be > 0, got {getattr(self, key)}")
        if self.s_tanh_warmup_epochs < 0:
            raise ValueError(f"quantizer.s_tanh_warmup_epochs must be >= 0, got {self.s_tanh_warmup_epochs}")
        if self.seed is not None and self.seed < 0:
            raise ValueError(f"quantizer.seed must be >= 0 or null, got {self.seed}")


# --------------------------------------------------------------------------------------------
# the XOR network M
# --------------------------------------------------------------------------------------------


def _unconstrained(rng: np.random.Generator, n_in: int, n_out: int, n_tap: int) -> np.ndarray:
    """Each row: n_tap distinct columns drawn uniformly (rows may repeat, columns may go unused)."""
    cols = np.argsort(rng.random((n_out, n_in)), axis=1)[:, :n_tap]
    m = np.zeros((n_out, n_in), dtype=np.uint8)
    np.put_along_axis(m, cols, 1, axis=1)
    return m


def _repair_unused(rng: np.random.Generator, m: np.ndarray) -> np.ndarray:
    """Move taps from over-used columns to unused ones until every column feeds a gate
    (each row keeps its tap count; needs n_out*n_tap >= n_in)."""
    m = m.copy()
    while True:
        counts = m.sum(axis=0)
        unused = np.flatnonzero(counts == 0)
        if len(unused) == 0:
            return m
        c = int(rng.choice(unused))
        d = int(rng.choice(np.flatnonzero(counts >= 2)))
        r = int(rng.choice(np.flatnonzero(m[:, d])))  # a row holding d cannot hold c (c is unused)
        m[r, d], m[r, c] = 0, 1


def _full_rank(rng: np.random.Generator, n_in: int, n_out: int, n_tap: int, tries: int = 100_000) -> np.ndarray:
    """Rows drawn like ``unconstrained``, but while the rank is below the largest reachable
    (gf2.max_rank) a row is redrawn until it is independent of the rows kept; rows shuffled."""
    target = gf2.max_rank(n_in, n_out, n_tap)
    basis = gf2.IncrementalBasis()
    rows = []
    for _ in range(n_out):
        for _ in range(tries):
            row = _unconstrained(rng, n_in, 1, n_tap)[0]
            if basis.rank >= target or basis.add(row):
                break
        else:  # pragma: no cover - max_rank is reachable for every valid (n_in, n_tap)
            raise RuntimeError(f"could not draw a full-rank XOR matrix for n_in={n_in}, n_out={n_out}, n_tap={n_tap}")
        rows.append(row)
    return np.stack(rows)[rng.permutation(n_out)]


def _bernoulli(rng: np.random.Generator, n_in: int, n_out: int) -> np.ndarray:
    """Every entry 0/1 with probability 1/2 (the paper's MNIST Fig. 4 matrices); empty rows redrawn."""
    m = (rng.random((n_out, n_in)) < 0.5).astype(np.uint8)
    while (empty := np.flatnonzero(m.sum(axis=1) == 0)).size:
        m[empty] = (rng.random((len(empty), n_in)) < 0.5).astype(np.uint8)
    return m


def _cyclic(n_in: int, n_out: int, n_tap: int) -> np.ndarray:
    """Structured M: row r taps columns (r + j*d) mod n_in for j < n_tap, stride d = 1 + r // n_in
    (the next stride once the n_in cyclic shifts are used, so rows repeat only after n_in - 1 strides);
    a column already tapped moves to the next free one. For n_tap = 2 the first min(n_out, n_in) rows
    reach the largest rank (gf2.max_rank)."""
    m = np.zeros((n_out, n_in), dtype=np.uint8)
    for r in range(n_out):
        d, taps = 1 + r // n_in, []
        for j in range(n_tap):
            c = (r + j * d) % n_in
            while c in taps:
                c = (c + 1) % n_in
            taps.append(c)
        m[r, taps] = 1
    return m


@lru_cache(maxsize=256)
def _xor_matrix_cached(n_in: int, n_out: int, n_tap: int, plane: int, seed: int, policy: str) -> np.ndarray:
    rng = np.random.default_rng([int(seed), n_in, n_out, n_tap, plane, XOR_POLICIES.index(policy)])
    if policy == "bernoulli":
        m = _bernoulli(rng, n_in, n_out)
    elif policy == "cyclic":
        m = _cyclic(n_in, n_out, n_tap)
    elif policy == "full_rank":
        m = _full_rank(rng, n_in, n_out, n_tap)
    else:
        m = _unconstrained(rng, n_in, n_out, n_tap)
        if policy == "no_unused":
            m = _repair_unused(rng, m)
    m.setflags(write=False)
    return m


def xor_matrix(
    n_in: int, n_out: int, n_tap: int = 2, plane: int = 0, seed: int = 0, policy: str = "unconstrained"
) -> np.ndarray:
    """The fixed random XOR network M (N_out x N_in, uint8 0/1), a pure function of
    (seed, n_in, n_out, n_tap, plane, policy): every layer with the same settings gets the same M.

    Policies: ``unconstrained`` (n_tap distinct columns per row, uniformly; as the unofficial
    reimplementation), ``no_unused`` (the same, then taps moved so every input feeds a gate),
    ``full_rank`` (rank = gf2.max_rank: N_in - 1 for even n_tap), ``bernoulli`` (entries
    Bernoulli(1/2), n_tap ignored; the paper's MNIST matrices), ``cyclic`` (structured, seed
    ignored: cyclic shifts of one tap pattern, see :func:`_cyclic`)."""
    check_choice("xor_policy", policy, XOR_POLICIES)
    if policy != "bernoulli" and not 1 <= n_tap <= n_in:
        raise ValueError(f"n_tap must be in [1, n_in={n_in}], got {n_tap}")
    return _xor_matrix_cached(int(n_in), int(n_out), int(n_tap), int(plane), int(seed), policy).copy()


def taps_of(m) -> tuple[Tensor, Tensor]:
    """Gather form of a 0/1 matrix M (N_out x N_in): ``taps`` (N_out, T) long, the tapped
    columns of each row padded with index N_in (a constant +1 input), T = the largest row
    weight; ``row_sign`` (N_out,) = (-1)^(taps_r - 1)."""
    a = torch.as_tensor(gf2.as_bits(m), dtype=torch.long)
    n_out, n_in = a.shape
    counts = a.sum(1)
    width = max(int(counts.max()), 1) if n_out else 1
    cols = torch.arange(n_in).expand(n_out, n_in)
    keyed = torch.where(a.bool(), cols, torch.full_like(cols, n_in))  # tapped columns first after sort
    taps = keyed.sort(dim=1).values[:, :width]
    row_sign = torch.where(counts % 2 == 1, 1.0, -1.0)
    return taps.contiguous(), row_sign


def xor_pm1(*inputs: Tensor) -> Tensor:
    """The n-input XOR in the +-1 domain (0 <-> -1, 1 <-> +1): (-1)^(n-1) * prod inputs."""
    out = inputs[0]
    for x in inputs[1:]:
        out = out * x
    return out if len(inputs) % 2 == 1 else -out


def xor_decrypt_pm1(s: Tensor, taps: Tensor, row_sign: Tensor) -> Tensor:
    """Batched +-1 XOR decryption: s (..., S, N_in) -> (..., S, N_out), y_r = row_sign_r *
    prod_{j in taps_r} s_j, as one gather + product (taps padded with index N_in = +1).
    ``taps`` (..., N_out, T) and ``row_sign`` (..., N_out) broadcast over the leading dims."""
    ones = torch.ones(*s.shape[:-1], 1, dtype=s.dtype, device=s.device)
    padded = torch.cat([s, ones], dim=-1)  # (..., S, N_in + 1)
    n_out, width = taps.shape[-2:]
    index = taps.reshape(*taps.shape[:-2], 1, n_out * width).expand(*s.shape[:-1], n_out * width)
    gathered = torch.gather(padded, -1, index).reshape(*s.shape[:-1], n_out, width)
    return gathered.prod(-1) * row_sign.unsqueeze(-2)


def slices_for(shape: tuple[int, int, int, int], n_out: int, order: str) -> int:
    """Number of N_out-slices a weight of ``shape`` (C_out, C_in, kh, kw) needs: ceil(n / N_out),
    or for ``order=filter`` C_out * ceil(C_in*kh*kw / N_out) (each filter padded on its own)."""
    c_out, c_in, kh, kw = shape
    if order == "filter":
        return c_out * math.ceil(c_in * kh * kw / n_out)
    return math.ceil(c_out * c_in * kh * kw / n_out)


def bits_to_weight(flat: Tensor, shape: tuple[int, int, int, int], order: str) -> Tensor:
    """(..., >= n) decrypted bits -> (..., C_out, C_in, kh, kw): the first n = prod(shape) bits
    (the last slice's surplus dropped) laid out in ``order`` (tf: [kh, kw, C_in, C_out]);
    ``filter``: exactly C_out padded filters of ceil(C_in*kh*kw/N_out)*N_out bits each, the
    first C_in*kh*kw of each kept in PyTorch order."""
    c_out, c_in, kh, kw = shape
    n = c_out * c_in * kh * kw
    lead = flat.shape[:-1]
    if order == "filter":
        return flat.reshape(*lead, c_out, -1)[..., : c_in * kh * kw].reshape(*lead, c_out, c_in, kh, kw)
    flat = flat[..., :n]
    if order == "torch":
        return flat.reshape(*lead, c_out, c_in, kh, kw)
    nd = len(lead)
    tf = flat.reshape(*lead, kh, kw, c_in, c_out)
    return tf.permute(*range(nd), nd + 3, nd + 2, nd, nd + 1)


def weight_to_flat(w: Tensor, order: str) -> Tensor:
    """Inverse of :func:`bits_to_weight` without the padding: (..., C_out, C_in, kh, kw) -> (..., n)
    (``filter`` gives PyTorch order: the per-filter padding is not part of the weight)."""
    nd = w.dim() - 4
    if order == "tf":
        w = w.permute(*range(nd), nd + 2, nd + 3, nd + 1, nd)
    return w.reshape(*w.shape[:nd], -1)


@lru_cache(maxsize=1024)
def _rank_cached(key: bytes, n_out: int, n_in: int) -> int:
    return gf2.rank(np.frombuffer(key, dtype=np.uint8).reshape(n_out, n_in))


def matrix_rank(m: np.ndarray) -> int:
    m = np.ascontiguousarray(gf2.as_bits(m))
    return _rank_cached(m.tobytes(), *m.shape)


# --------------------------------------------------------------------------------------------
# the layer
# --------------------------------------------------------------------------------------------


class FlexorConv2d(QuantConv2d):
    """FleXOR convolution: weights decrypted from sub-1-bit encrypted weights by XOR gates.

    Forward: B_i = reshape(drop_tail(XOR_M(sign(x^e_i)))) per plane i (sign(0) = +1,
    y_r = (-1)^(taps_r - 1) prod_{j in row r} s_j, bit-exact GF(2) decryption M x mod 2),
    W = sum_i alpha_i (.) B_i, y = conv(x or sign(x), W).
    Backward: ``scheme=flexor`` dL/dx^e_j = sum_{gates r fed by j} g_r (-1)^(taps_r - 1)
    S (1 - tanh^2(S x^e_j)) prod_{k in r, k != j} sign(x^e_k) (Eqs. 5-6); ``analog`` the exact
    derivative of (-1)^(t-1) prod tanh(S x^e) with an identity STE on the output (Eq. 3);
    ``ste`` as flexor with S (1 - tanh^2) replaced by 1. alpha: ordinary gradient.
    Paper: Lee et al., "FleXOR: Trainable Fractional Quantization", NeurIPS 2020, Alg. 1."""

    xor_matrix: Tensor  # buffers (see __init__)
    taps: Tensor
    row_sign: Tensor
    tanh_sign: ScaledTanh

    def __init__(
        self,
        cfg: FlexorConfig,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        stage: int = 0,
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding)
        if cfg.n_in_per_stage is not None:
            if not 0 <= stage < len(cfg.n_in_per_stage):
                raise ValueError(
                    f"quantizer.n_in_per_stage={list(cfg.n_in_per_stage)} has no entry for stage {stage}; "
                    f"fix: give one N_in per stage of the model"
                )
            n_in = int(cfg.n_in_per_stage[stage])
        else:
            n_in = int(cfg.n_in)
        self.stage = stage
        self.n_in, self.n_out, self.q = n_in, int(cfg.n_out), int(cfg.q)
        self.n_tap = int(cfg.n_tap)
        self.flatten_order = cfg.flatten
        self.n_slices = slices_for((out_channels, in_channels, kernel_size, kernel_size), self.n_out, cfg.flatten)
        self.scheme = cfg.scheme
        self.xor_policy = cfg.xor_policy
        self.s_tanh = float(cfg.s_tanh)
        self.s_tanh_start = float(cfg.s_tanh_start)
        self.s_tanh_warmup_epochs = int(cfg.s_tanh_warmup_epochs)
        self.s_tanh_double = bool(cfg.s_tanh_double_at_decay)
        self.clip_encrypted = bool(cfg.clip_encrypted)
        self.clip_factor = float(cfg.clip_factor)
        self.alpha_init = float(cfg.alpha_init)
        if cfg.alpha_init_rule == "fan_in":  # Kaiming's std for +-1 weights: alpha = sqrt(2 / fan_in)
            self.alpha_init = math.sqrt(2.0 / (in_channels * kernel_size * kernel_size))
        self.encrypted_init_std = float(cfg.encrypted_init_std)
        self.weight_decay_on = cfg.weight_decay_on
        self.matrix_seed = int(cfg.seed) if cfg.seed is not None else int(torch.initial_seed())

        self.encrypted = nn.Parameter(torch.empty(self.q, self.n_slices, self.n_in))
        self.alpha = nn.Parameter(torch.empty(self.q, out_channels if cfg.alpha_shape == "channel" else 1))
        mats = [
            xor_matrix(
                self.n_in,
                self.n_out,
                self.n_tap,
                p if cfg.plane_matrices == "per_plane" else 0,
                self.matrix_seed,
                cfg.xor_policy,
            )
            for p in range(self.q)
        ]
        self.register_buffer("xor_matrix", torch.from_numpy(np.stack(mats)))  # (q, N_out, N_in) uint8, saved
        self.register_buffer("taps", torch.zeros(0, dtype=torch.long), persistent=False)
        self.register_buffer("row_sign", torch.zeros(0), persistent=False)
        self._rebuild_taps()
        self.register_load_state_dict_post_hook(lambda module, _incompatible: module._rebuild_taps())

        # the shared scaled-tanh surrogate holds S_tanh (buffer ``s``) for every scheme; another
        # per-sign surrogate (scheme=ste, or weight_surrogate=<name>) is built beside it
        sign_name = cfg.weight_surrogate or ("ste" if self.scheme == "ste" else "scaled_tanh")
        self.tanh_sign = ScaledTanh("weight", SurrogateParams(s_tanh=self.s_tanh))
        self.other_sign = (
            None if sign_name == "scaled_tanh" else make_surrogate(sign_name, "weight", cfg.surrogate_params)
        )
        self.act_sign = (
            make_surrogate(cfg.act_surrogate, "activation", cfg.surrogate_params) if cfg.binary_activations else None
        )
        self.reset_latent_weight(None)

    # -- state -----------------------------------------------------------------------------
    def _rebuild_taps(self) -> None:
        """``taps``/``row_sign`` (the gather form forward uses) from the ``xor_matrix`` buffer."""
        pairs = [taps_of(m) for m in self.xor_matrix.cpu()]
        width = max(t.shape[1] for t, _ in pairs)
        taps = torch.stack(
            [torch.cat([t, torch.full((t.shape[0], width - t.shape[1]), self.n_in)], 1) for t, _ in pairs]
        )
        dev = self.xor_matrix.device
        row_sign = torch.stack([r for _, r in pairs]).to(dev, self.row_sign.dtype)
        if self.taps.shape == taps.shape:  # in place: the buffers keep their identity (DDP, compiled graphs)
            self.taps.copy_(taps)
            self.row_sign.copy_(row_sign)
        else:
            self.taps = taps.to(dev)
            self.row_sign = row_sign

    @torch.no_grad()
    def set_xor_matrix(self, m, plane: int | None = None) -> None:
        """Replace M (N_out x N_in, 0/1) for one plane, or for all planes when ``plane`` is None."""
        m = torch.as_tensor(gf2.as_bits(m), dtype=torch.uint8)
        if tuple(m.shape) != (self.n_out, self.n_in):
            raise ValueError(f"XOR matrix must be {self.n_out}x{self.n_in}, got {tuple(m.shape)}")
        planes = range(self.q) if plane is None else [plane]
        for p in planes:
            self.xor_matrix[p].copy_(m)
        self._rebuild_taps()

    @torch.no_grad()
    def reset_latent_weight(self, init_fn=None) -> None:
        """FleXOR's latent state is not a conv-shaped weight: an architecture's init (kaiming)
        is ignored; encrypted weights ~ N(0, encrypted_init_std^2), alpha = alpha_init."""
        self.encrypted.normal_(0.0, self.encrypted_init_std)
        self.alpha.fill_(self.alpha_init)

    @property
    def current_s_tanh(self) -> float:
        return float(self.tanh_sign.s)

    def s_tanh_at(self, epoch: int, lr_decays: int = 0) -> float:
        """S_tanh for ``epoch``: linear warm-up s_tanh_start -> s_tanh over s_tanh_warmup_epochs
        (start at epoch 0, s_tanh from epoch W on), then x2 per LR decay when enabled."""
        s = self.s_tanh
        w = self.s_tanh_warmup_epochs
        if w > 0 and epoch < w:
            s = self.s_tanh_start + (self.s_tanh - self.s_tanh_start) * epoch / w
        if self.s_tanh_double:
            s *= 2.0**lr_decays
        return s

    @property
    def clip_value(self) -> float:
        return self.clip_factor / self.current_s_tanh

    # -- forward ---------------------------------------------------------------------------
    def decrypted_pm1(self) -> Tensor:
        """(q, n_slices, N_out) decrypted +-1 bits, with the gradient of ``scheme``."""
        x = self.encrypted
        if self.scheme != "analog":
            sign = self.tanh_sign if self.other_sign is None else self.other_sign
            return xor_decrypt_pm1(sign(x), self.taps, self.row_sign)
        # analog XOR: value = the digital bits, gradient = d/dx of prod tanh(S x)
        s = self.tanh_sign.s.to(x.dtype)
        analog = xor_decrypt_pm1(torch.tanh(s * x), self.taps, self.row_sign)
        with torch.no_grad():
            digital = xor_decrypt_pm1(sign_pm1(x), self.taps, self.row_sign)
        return digital + (analog - analog.detach())

    def bit_planes(self) -> Tensor:
        """B: (q, C_out, C_in, kh, kw) in {-1, +1} (differentiable per ``scheme``)."""
        y = self.decrypted_pm1().reshape(self.q, self.n_slices * self.n_out)
        return bits_to_weight(y, self.weight_shape, self.flatten_order)

    @property
    def weight_shape(self) -> tuple[int, int, int, int]:
        return (self.out_channels, self.in_channels, *self.kernel_size)

    def combine(self, planes: Tensor) -> Tensor:
        """W = sum_i alpha_i (.) B_i, alpha broadcast over each output channel."""
        return (self.alpha.view(self.q, -1, 1, 1, 1) * planes).sum(0)

    def quantized_weight(self) -> Tensor:
        return self.combine(self.bit_planes())

    def quantize_input(self, x: Tensor) -> Tensor:
        return self.act_sign(x) if self.act_sign is not None else x

    # -- schedules -------------------------------------------------------------------------
    @torch.no_grad()
    def epoch_start(self, epoch: int, max_epochs: int, lr_decays: int = 0) -> None:
        """S_tanh warm-up and doubling at each LR decay (written into the surrogate's buffer).
        The gather form of M is rebuilt too (a few small tensors, once per epoch), so a write
        into the ``xor_matrix`` buffer that bypasses ``load_state_dict`` and its hook still
        takes effect."""
        super().epoch_start(epoch, max_epochs, lr_decays)
        self.tanh_sign.s.fill_(self.s_tanh_at(epoch, lr_decays))
        self._rebuild_taps()

    @torch.no_grad()
    def step_end(self, epoch: int, step: int) -> None:
        """Clip the encrypted weights to +-clip_factor/S_tanh after each optimizer step."""
        if self.clip_encrypted:
            c = (self.clip_factor / self.tanh_sign.s).to(self.encrypted.dtype)  # a tensor: no device sync
            self.encrypted.clamp_(min=-c, max=c)

    def weight_decay_only(self) -> list[nn.Parameter] | None:
        """``weight_decay_on=encrypted``: the parameters that alone get weight decay in the whole
        model (the optimizer set-up reads this); None: weight decay on every parameter."""
        return [self.encrypted] if self.weight_decay_on == "encrypted" else None

    # -- export helpers --------------------------------------------------------------------
    @torch.no_grad()
    def encrypted_bits(self) -> Tensor:
        """(q, n_slices, N_in) uint8: 1 where x^e >= 0 (the stored sign bits)."""
        return (self.encrypted >= 0).to(torch.uint8)

    # -- diagnostics -----------------------------------------------------------------------
    @torch.no_grad()
    def latent_weight(self) -> Tensor:
        """Conv-shaped real stand-in for diagnostics: sum_i alpha_i (.) analog XOR of
        tanh(S x^e) (its sign is the binary weight for q = 1 and alpha > 0)."""
        s = self.tanh_sign.s.to(self.encrypted.dtype)
        analog = xor_decrypt_pm1(torch.tanh(s * self.encrypted), self.taps, self.row_sign)
        planes = bits_to_weight(analog.reshape(self.q, -1), self.weight_shape, self.flatten_order)
        return self.combine(planes)

    @torch.no_grad()
    def weight_signs(self) -> Tensor:
        """All decrypted bits in {-1, +1}: (q*C_out, C_in, kh, kw) (conv-shaped for q = 1)."""
        y = xor_decrypt_pm1(sign_pm1(self.encrypted), self.taps, self.row_sign).reshape(self.q, -1)
        return bits_to_weight(y, self.weight_shape, self.flatten_order).reshape(-1, *self.weight_shape[1:])

    def xor_ranks(self) -> list[int]:
        return [matrix_rank(m) for m in self.xor_matrix.cpu().numpy()]

    def unused_inputs(self) -> list[int]:
        return [int(len(gf2.unused_columns(m))) for m in self.xor_matrix.cpu().numpy()]

    def storage(self) -> Storage:
        """weight_bits = q * N_in * n_slices (the encrypted sign bits, per-filter padding included
        for ``flatten=filter``); alpha: q*C_out floats.
        M is shared by every layer with the same settings and not counted (N_out*N_in bits)."""
        return Storage(
            weights=self.num_weights,
            weight_bits=self.q * self.n_in * self.n_slices,
            inference_floats=self.alpha.numel(),
        )

    def bit_counts(self) -> dict:
        """Additive counts behind the reported rates (summed over layers for the model)."""
        s = self.storage()
        return {
            "weights": s.weights,
            "weight_bits": s.weight_bits,
            "alpha_floats": s.inference_floats,
            "effective_bits": sum(self.xor_ranks()) * self.n_slices,
            "unused_encrypted_bits": sum(self.unused_inputs()) * self.n_slices,
            "dropped_bits": self.q * (self.n_slices * self.n_out - self.num_weights),
        }

    def report(self) -> dict:
        """Nominal bits/weight q*N_in*ceil(n/N_out)/n, with the 32-bit alphas, the GF(2) rank of
        each plane's M and the effective bits q*rank*n_slices/n, the share of encrypted inputs
        feeding no gate."""
        c = self.bit_counts()
        n = c["weights"]
        return {
            "n_in": self.n_in,
            "n_out": self.n_out,
            "n_tap": self.n_tap,
            "q": self.q,
            "n_slices": self.n_slices,
            "weights": n,
            "bits_per_weight": round(c["weight_bits"] / n, 6),
            "bits_per_weight_with_alpha": round((c["weight_bits"] + 32 * c["alpha_floats"]) / n, 6),
            "xor_rank": self.xor_ranks(),
            "effective_bits_per_weight": round(c["effective_bits"] / n, 6),
            "unused_input_share": round(c["unused_encrypted_bits"] / c["weight_bits"], 6),
            "dropped_bits": c["dropped_bits"],
        }

    @staticmethod
    def model_report(layers: list[FlexorConv2d]) -> dict:
        """Model-level aggregates of the layers' bit counts (for metrics.json)."""
        tot = {
            k: 0
            for k in (
                "weights",
                "weight_bits",
                "alpha_floats",
                "effective_bits",
                "unused_encrypted_bits",
                "dropped_bits",
            )
        }
        for layer in layers:
            for k, v in layer.bit_counts().items():
                tot[k] += v
        n = max(tot["weights"], 1)
        return {
            "flexor_layers": len(layers),
            "flexor_bits_per_weight": round(tot["weight_bits"] / n, 6),
            "flexor_bits_per_weight_with_alpha": round((tot["weight_bits"] + 32 * tot["alpha_floats"]) / n, 6),
            "flexor_effective_bits_per_weight": round(tot["effective_bits"] / n, 6),
            "flexor_unused_input_share": round(tot["unused_encrypted_bits"] / max(tot["weight_bits"], 1), 6),
            "flexor_dropped_bits": tot["dropped_bits"],
        }

    @torch.no_grad()
    def extra_stats(self) -> dict[str, Tensor]:
        r = self.report()
        x = self.encrypted.detach()
        c = self.clip_value
        return {
            "flexor_bits_per_weight": torch.tensor(r["bits_per_weight"]),
            "flexor_bits_with_alpha": torch.tensor(r["bits_per_weight_with_alpha"]),
            "flexor_effective_bits": torch.tensor(r["effective_bits_per_weight"]),
            "flexor_unused_inputs": torch.tensor(r["unused_input_share"]),
            "flexor_s_tanh": self.tanh_sign.s.detach().float().cpu(),
            "flexor_alpha_mean": self.alpha.detach().float().mean().cpu(),
            "flexor_encrypted_abs_mean": x.abs().mean().float().cpu(),
            "flexor_clipped_share": (x.abs() >= c * (1 - 1e-6)).float().mean().cpu(),
        }

    def histograms(self) -> dict[str, Tensor]:
        return {"encrypted_weight": self.encrypted.detach(), "flexor_alpha": self.alpha.detach()}

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, n_in={self.n_in}, n_out={self.n_out}, n_tap={self.n_tap}, q={self.q}, "
            f"flatten={self.flatten_order}, scheme={self.scheme}"
        )


@register_quantizer("flexor", FlexorConfig, "FleXOR: sub-1-bit weights decrypted by a fixed XOR network (NeurIPS 2020)")
def build_flexor_conv(cfg: FlexorConfig, spec: ConvSpec) -> FlexorConv2d:
    """Forward: XOR-decrypted sign bits times alpha; backward: scaled-tanh surrogate through
    the XOR product. Paper: Lee et al., FleXOR, NeurIPS 2020."""
    return FlexorConv2d(
        cfg, spec.in_channels, spec.out_channels, spec.kernel_size, spec.stride, spec.padding, spec.stage
    )


class FlexorLinear(FlexorConv2d):
    """FleXOR on a linear layer ``(..., in) -> (..., out)``: the layer is FleXOR's 1x1 convolution
    applied to every token, so the (out, in) weight is encrypted, sliced and decrypted exactly like
    a conv weight (``flatten=tf`` is then the TensorFlow dense-kernel order [in, out], out
    fastest), with the same alpha per output row and plane. FleXOR's MNIST LeNet-5 encrypts its
    fully connected layer the same way (arXiv:2009.04690, Fig. 4). The bias stays full
    precision, added after the decrypted matmul; activations are real unless
    ``binary_activations`` (then sign(x) per feature)."""

    input_dims = (-1,)

    def __init__(
        self, cfg: FlexorConfig, in_features: int, out_features: int, bias: bool = True, stage: int = 0
    ) -> None:
        super().__init__(cfg, in_features, out_features, 1, 1, 0, stage)
        self.in_features, self.out_features = in_features, out_features
        self.bias = nn.Parameter(torch.empty(out_features).uniform_(-1, 1) / math.sqrt(in_features)) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        out = torch.nn.functional.linear(self.quantize_input(x), self.quantized_weight().flatten(1))
        return out if self.bias is None else out + self.bias

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}, "
            f"n_in={self.n_in}, n_out={self.n_out}, n_tap={self.n_tap}, q={self.q}, "
            f"flatten={self.flatten_order}, scheme={self.scheme}"
        )


@register_linear("flexor")
def build_flexor_linear(cfg: FlexorConfig, spec: LinearSpec) -> FlexorLinear:
    """FleXOR's rule on a linear layer (:class:`FlexorLinear`); ``spec.stage`` picks n_in_per_stage."""
    return FlexorLinear(cfg, spec.in_features, spec.out_features, spec.bias, spec.stage)
