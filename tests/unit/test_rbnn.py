"""RBNN (Lin et al., NeurIPS 2020): the layer pinned to the reference's golden values
(RBNN, arXiv:2009.13055, Sec. 3, and the official ``modules/binarized_modules.py``)."""

from __future__ import annotations

import math
import os

import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from binexp.analysis.accounting import model_bits
from binexp.config import to_schema
from binexp.models import ModelConfig, build_model
from binexp.quant import ConvFactory, quantized_layers
from binexp.quant.rbnn import (
    RBNNConfig,
    RBNNConv2d,
    bi_rotation_shape,
    haar_orthogonal,
    layer_seed,
    rotate,
    rotation_rounds,
    standardize,
)
from binexp.quant.sign import SurrogateParams, sign_pm1
from tests.conftest import HANG_LIMIT


def make_layer(cout=16, cin=16, k=3, seed=0, index=0, **kw) -> RBNNConv2d:
    return RBNNConv2d(RBNNConfig(seed=seed, **kw), cin, cout, k, 1, k // 2, layer_index=index)


def gaussian_layer(cout, cin, k, seed=0, **kw) -> RBNNConv2d:
    layer = make_layer(cout, cin, k, seed=seed, **kw)
    g = torch.Generator().manual_seed(1000 + seed)
    with torch.no_grad():
        layer.weight.copy_(torch.randn(layer.weight.shape, generator=g))
    return layer


def golden_x() -> torch.Tensor:
    """§5.7: X[c,p,q] = sin(1.7m + 0.3) + 0.5 cos(0.9 m^2), m = 6c + 3p + q; C=4, n1=2, n2=3."""
    m = torch.arange(24, dtype=torch.float64).view(4, 2, 3)
    return torch.sin(1.7 * m + 0.3) + 0.5 * torch.cos(0.9 * m * m)


# -- shapes --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "n,expected",
    [
        (144, (12, 12)),
        (288, (16, 18)),
        (576, (24, 24)),
        (1152, (32, 36)),
        (2304, (48, 48)),
        (4608, (64, 72)),
        (64, (8, 8)),
        (128, (8, 16)),
        (256, (16, 16)),
        (27, (3, 9)),
        (1, (1, 1)),
        (13, (1, 13)),
        (4099, (1, 4099)),
    ],
)
def test_n1_n2_is_the_largest_divisor_below_sqrt(n, expected):
    assert bi_rotation_shape(n) == expected


def test_prime_fan_in_is_handled_and_guarded():
    # 13 = C_in*k*k with C_in = 13, k = 1: R1 is a 1x1 sign, R2 a 13x13 rotation
    layer = make_layer(4, 13, 1)
    assert (layer.n1, layer.n2) == (1, 13) and layer.R1.abs().item() == 1.0
    layer.update_rotation()
    assert torch.allclose(layer.R2.T @ layer.R2, torch.eye(13), atol=1e-5)
    with pytest.raises(ValueError, match=r"largest divisor of n = 13 up to sqrt\(n\) is 1, so R1 kron R2 is 1 x 13"):
        make_layer(4, 13, 1, max_full_rotation_dim=12)


def test_parameter_and_buffer_shapes():
    layer = make_layer(32, 16, 3)
    assert layer.R1.shape == (12, 12) and layer.R2.shape == (12, 12)
    assert layer.theta.shape == (32, 1, 1, 1) and layer.scale.shape == (32, 1, 1)
    assert layer.R1.dtype == torch.float32 and not layer.R1.requires_grad
    assert {"R1", "R2", "rotation_updates"} <= {n for n, _ in layer.named_buffers()}
    assert {n for n, _ in layer.named_parameters()} == {"weight", "scale", "theta"}


def test_bi_rotation_is_the_kronecker_rotation():
    layer = make_layer(8, 16, 3).double()
    w_s = layer.standardized_weight().detach()
    rot = layer.rotated(w_s).reshape(8, -1)
    full = torch.kron(layer.R1, layer.R2).T @ w_s.reshape(8, -1).T
    assert (rot - full.T).abs().max().item() < 1e-12
    layer32 = make_layer(8, 16, 3)
    w32 = layer32.standardized_weight().detach()
    full32 = (torch.kron(layer32.R1.double(), layer32.R2.double()).T @ w32.double().reshape(8, -1).T).T
    assert (layer32.rotated(w32).reshape(8, -1).double() - full32).abs().max().item() < 1e-6  # §5.3: 1e-6 in fp32


def test_full_rotation_is_one_n_by_n_matrix():
    layer = gaussian_layer(8, 16, 3, rotation_kind="full")
    assert (layer.n1, layer.n2) == (1, 144) and layer.R2.shape == (144, 144)
    assert layer.storage().training_floats == {"R1": 1, "R2": 144 * 144, "theta": 8}
    w_s = layer.standardized_weight().detach()
    expected = layer.R1.item() * w_s.reshape(8, -1) @ layer.R2
    assert torch.allclose(layer.rotated(w_s).reshape(8, -1), expected, atol=1e-5)
    layer.update_rotation()
    obj = layer._stat_objective
    assert (obj[1:] >= obj[:-1] - 1e-3).all()
    with pytest.raises(ValueError, match="needs a 576x576 rotation matrix"):
        make_layer(8, 64, 3, rotation_kind="full", max_full_rotation_dim=512)


# -- the alternating solver -----------------------------------------------------------------
def test_golden_example_objective_and_first_round():
    x, eye2, eye3 = golden_x(), torch.eye(2, dtype=torch.float64), torch.eye(3, dtype=torch.float64)
    six = 5e-7  # the golden values carry 6 decimals: every value must round to them
    res = rotation_rounds(x, eye2, eye3, rounds=3)
    assert res.objectives.tolist() == pytest.approx([15.711572, 16.888942, 17.253976, 17.255985], abs=six)
    one = rotation_rounds(x, eye2, eye3, rounds=1)
    assert one.r1.flatten().tolist() == pytest.approx([0.993102, -0.117255, 0.117255, 0.993102], abs=six)
    assert one.r2.flatten().tolist() == pytest.approx(
        [0.910064, -0.409362, -0.064861, 0.409251, 0.862781, 0.296856, -0.065561, -0.296702, 0.952717], abs=six
    )
    s1, s2 = one.singular_values[0]
    assert s1.tolist() == pytest.approx([8.552314, 7.268392], abs=six)
    assert s2.tolist() == pytest.approx([10.659766, 5.174312, 0.850135], abs=six)
    # the objective is the L1 norm of the rotated filters (B = sign(rotated))
    assert res.objectives[-1].item() == pytest.approx(rotate(x, res.r1, res.r2).abs().sum().item(), abs=1e-12)


def test_golden_example_through_the_layer():
    # a 1x1 conv with 6 input channels: n = 6 -> (2, 3), the example's layout
    layer = RBNNConv2d(RBNNConfig(rotation_init="identity", weight_standardize=False, update_dtype="float64"), 6, 4, 1)
    assert (layer.n1, layer.n2) == (2, 3)
    with torch.no_grad():
        layer.weight.copy_(golden_x().reshape(4, 6, 1, 1).float())
    layer.update_rotation()
    assert layer._stat_objective.tolist() == pytest.approx([15.711572, 16.888942, 17.253976, 17.255985], abs=1e-4)


@pytest.mark.parametrize("shape", [(16, 16, 3), (32, 16, 3), (64, 32, 1)])
def test_updates_keep_rotations_orthogonal_and_objective_non_decreasing(shape):
    layer = gaussian_layer(*shape)
    for _ in range(4):
        layer.update_rotation()
        eye1, eye2 = torch.eye(layer.n1), torch.eye(layer.n2)
        assert (layer.R1.T @ layer.R1 - eye1).abs().max().item() < 1e-5
        assert (layer.R2.T @ layer.R2 - eye2).abs().max().item() < 1e-5
        obj = layer._stat_objective
        assert (obj[1:] - obj[:-1] >= -1e-4 * obj[0]).all(), obj
        with torch.no_grad():  # the weights move between updates, as in training
            layer.weight.add_(0.05 * torch.randn_like(layer.weight))
    assert layer.rotation_updates.item() == 4


def test_norms_are_preserved_by_standardisation_and_rotation():
    layer = gaussian_layer(16, 16, 3)  # n = 144
    w_s = layer.standardized_weight().detach()
    norms = w_s.flatten(1).norm(dim=1)
    assert norms.tolist() == pytest.approx([math.sqrt(143)] * 16, abs=1e-4)
    assert math.sqrt(143) == pytest.approx(11.95826, abs=1e-5)
    layer.update_rotation()
    assert layer.rotated(w_s).flatten(1).norm(dim=1).tolist() == pytest.approx([11.95826] * 16, abs=1e-4)


@pytest.mark.parametrize("seed", [0, 1])
def test_flip_rate_is_half_from_haar_init_and_small_from_identity(seed):
    haar = gaussian_layer(64, 64, 3, seed=seed)
    haar.update_rotation()
    cos_before, cos_after, flips, _ = haar._stat_update.tolist()
    assert flips == pytest.approx(0.50, abs=0.02)
    assert cos_before == pytest.approx(math.sqrt(2 / math.pi), abs=0.01)
    assert 0.805 < cos_after < 0.82
    ident = gaussian_layer(64, 64, 3, seed=seed, rotation_init="identity")
    ident.update_rotation()
    assert ident._stat_update[2].item() < 0.1
    # flips as the paper defines them: sign(R^T w_s) != sign(w_s)
    w_s = haar.standardized_weight().detach()
    direct = (sign_pm1(haar.rotated(w_s)) != sign_pm1(w_s)).float().mean().item()
    assert direct == pytest.approx(flips, abs=1e-6)


# -- alpha and the gradients -------------------------------------------------------------------
def test_alpha_is_exactly_one_and_latent_gradient_exactly_zero_at_init():
    torch.manual_seed(0)
    layer = make_layer(8, 4, 3)
    assert layer.theta.dtype == torch.float32 and torch.equal(layer.alpha(), torch.ones(8, 1, 1, 1))
    x = torch.randn(2, 4, 6, 6)
    layer(x).square().sum().backward()
    assert torch.equal(layer.weight.grad, torch.zeros_like(layer.weight))
    assert layer.scale.grad.abs().sum() > 0
    assert layer.theta.grad is not None and layer.theta.grad.abs().max() < 1e-4  # cos(pi/2) ~ -4.4e-8


def test_latent_gradient_is_one_minus_alpha_times_the_surrogate():
    torch.manual_seed(0)
    layer = gaussian_layer(8, 4, 3)
    with torch.no_grad():
        layer.theta.fill_(math.pi / 2 - 0.3)
    assert layer.alpha().flatten()[0].item() == pytest.approx(0.955337, abs=1e-6)
    layer.epoch_start(300, 1000)  # a flat-ish surrogate with a visible shape: t = 0.0794, k = 12.6
    w_s = layer.standardized_weight().detach().requires_grad_(True)
    w_t = layer.mixed_weight(w_s)
    g = torch.randn_like(w_t)
    (layer.weight_sign(w_t) * g).sum().backward()
    expected = 0.044663 * layer.weight_sign.derivative(w_t.detach()) * g
    assert torch.allclose(w_s.grad, expected, rtol=1e-4, atol=1e-7)
    # and the whole layer: the latent weight now does get a gradient
    layer(torch.randn(2, 4, 5, 5)).sum().backward()
    assert layer.weight.grad.abs().sum() > 0


def test_alpha_stays_in_unit_interval_for_any_theta():
    layer = make_layer(64, 4, 1)
    with torch.no_grad():
        layer.theta.copy_(torch.linspace(-20, 20, 64).view(-1, 1, 1, 1))
    a = layer.alpha()
    assert a.min() >= 0 and a.max() <= 1


def test_gradient_through_the_rotation_option():
    torch.manual_seed(0)
    layer = gaussian_layer(4, 4, 3, rotated_grad="through", alpha_mode="fixed", alpha_value=0.7)
    w_s = layer.standardized_weight().detach().requires_grad_(True)
    g = torch.randn_like(w_s)
    (layer.mixed_weight(w_s) * g).sum().backward()
    rot_g = (torch.kron(layer.R1, layer.R2) @ g.reshape(4, -1).T).T.reshape(g.shape)
    assert torch.allclose(w_s.grad, 0.3 * g + 0.7 * rot_g, atol=1e-5)
    assert not hasattr(layer, "theta") or layer.theta is None


def test_unconstrained_alpha_is_theta():
    layer = gaussian_layer(4, 4, 3, alpha_mode="unconstrained", alpha_value=1.0)
    assert torch.equal(layer.alpha(), layer.theta) and layer.theta.flatten().tolist() == [1.0] * 4
    w_s = layer.standardized_weight().detach()
    g = torch.randn_like(w_s)
    (layer.mixed_weight(w_s) * g).sum().backward()
    expected = ((layer.rotated(w_s) - w_s) * g).sum(dim=(1, 2, 3))
    assert torch.allclose(layer.theta.grad.flatten(), expected, atol=1e-4)


# -- surrogates and their schedule -----------------------------------------------------------------
def surrogate_grad(surrogate, xs):
    x = torch.tensor(xs, dtype=torch.float64, requires_grad=True)
    surrogate(x).sum().backward()
    return x.grad.tolist()


def test_layer_surrogates_match_the_reference_table():
    layer = make_layer(4, 4, 3)
    layer.epoch_start(0, 1000)  # t = 0.01, k = 100; activations t_a = 1, k = 1
    assert (layer.weight_sign.t.item(), layer.weight_sign.k.item()) == pytest.approx((0.01, 100.0))
    assert surrogate_grad(layer.weight_sign, [0, 0.5, 1, 1.5, 10, 100, 150]) == pytest.approx(
        [1.41421, 1.40921, 1.40421, 1.39921, 1.31421, 0.41421, 0.0], abs=1e-5
    )
    assert surrogate_grad(layer.act_sign, [0, 0.5, 1, 2]) == pytest.approx([1.41421, 0.91421, 0.41421, 0.0], abs=1e-5)
    layer.weight_sign.t.fill_(10.0)
    layer.weight_sign.k.fill_(1.0)
    assert surrogate_grad(layer.weight_sign, [0, 0.1, 0.1415]) == pytest.approx([14.14214, 4.14214, 0.0], abs=1e-5)
    layer.act_sign.t.fill_(5.0)
    assert surrogate_grad(layer.act_sign, [0, 0.1, 0.2, 0.28, 0.3]) == pytest.approx(
        [7.07107, 4.57107, 2.07107, 0.07107, 0.0], abs=1e-5
    )
    # forward is exact sign with sign(0) = +1
    assert layer.weight_sign(torch.tensor([-2.0, 0.0, 3.0])).tolist() == [-1.0, 1.0, 1.0]


@pytest.mark.parametrize(
    "big_e,e,t,k",
    [
        (1000, 0, 0.01, 100),
        (1000, 250, 0.05623, 17.78),
        (1000, 500, 0.31623, 3.162),
        (1000, 666, 0.99541, 1.0046),
        (1000, 667, 1.00231, 1),
        (1000, 999, 9.931, 1),
        (150, 0, 0.01, 100),
        (150, 75, 0.31623, 3.162),
        (150, 100, 1.0, 1),
        (150, 149, 9.550, 1),
    ],
)
def test_epoch_start_sets_the_t_k_schedule(big_e, e, t, k):
    layer = make_layer(4, 4, 3, rotation=False)
    layer.epoch_start(e, big_e)
    assert layer.weight_sign.t.item() == pytest.approx(t, rel=1e-3)
    assert layer.weight_sign.k.item() == pytest.approx(k, rel=1e-3)
    assert layer.act_sign.t.item() == pytest.approx(max(t, 1.0), rel=1e-3) and layer.act_sign.k.item() == 1.0
    stats = layer.extra_stats()
    assert stats["rbnn_t"].item() == pytest.approx(t, rel=1e-3) and stats["rbnn_k"].item() == pytest.approx(k, rel=1e-3)


def test_custom_t_range_and_other_surrogates():
    layer = make_layer(
        4, 4, 3, surrogate_params=SurrogateParams(t_min=0.1, t_max=1.0), weight_surrogate="tanh", act_surrogate="ste"
    )
    layer.epoch_start(0, 10)
    assert layer.weight_sign.name == "tanh" and layer.act_sign.name == "ste"
    layer2 = make_layer(4, 4, 3, surrogate_params=SurrogateParams(t_min=0.1, t_max=1.0))
    layer2.epoch_start(5, 10)
    assert layer2.weight_sign.t.item() == pytest.approx(0.1 * 10**0.5, rel=1e-6)


# -- when R changes ---------------------------------------------------------------------------------
def test_rotation_changes_only_in_the_hooks_never_in_forward():
    torch.manual_seed(0)
    layer = gaussian_layer(8, 8, 3)
    r1 = layer.R1.clone()
    x = torch.randn(2, 8, 5, 5)
    layer.train()
    layer(x).sum().backward()
    layer.eval()
    with torch.inference_mode():
        layer(x)
    assert torch.equal(layer.R1, r1) and layer.rotation_updates.item() == 0
    layer.step_start(0, 0)  # epoch mode: steps do nothing
    assert torch.equal(layer.R1, r1)
    layer.epoch_start(0, 10)
    assert not torch.equal(layer.R1, r1) and layer.rotation_updates.item() == 1
    layer.epoch_start(1, 10)
    assert layer.rotation_updates.item() == 2


def test_step_mode_and_frequency():
    layer = gaussian_layer(8, 8, 3, update_interval="step", update_frequency=2)
    layer.epoch_start(0, 10)
    assert layer.rotation_updates.item() == 0
    for step in range(5):
        layer.step_start(0, step)
    assert layer.rotation_updates.item() == 3  # steps 0, 2, 4
    for _ in range(3):  # gradient accumulation: every micro-batch of step 6 calls the hook with step 6
        layer.step_start(0, 6)
    assert layer.rotation_updates.item() == 4  # once per optimizer step, not per micro-batch
    every2 = gaussian_layer(8, 8, 3, update_frequency=2)
    for e in range(5):
        every2.epoch_start(e, 10)
    assert every2.rotation_updates.item() == 3
    frozen = gaussian_layer(8, 8, 3, rounds=0)
    r1 = frozen.R1.clone()
    frozen.epoch_start(0, 10)
    assert torch.equal(frozen.R1, r1)  # rounds=0: R stays at its random init


def test_haar_init_is_seeded_per_layer_and_identity_init():
    a, b = make_layer(8, 8, 3, seed=5, index=3), make_layer(8, 8, 3, seed=5, index=3)
    assert torch.equal(a.R1, b.R1) and torch.equal(a.R2, b.R2)
    assert not torch.equal(a.R1, make_layer(8, 8, 3, seed=5, index=4).R1)
    assert not torch.equal(a.R1, make_layer(8, 8, 3, seed=6, index=3).R1)
    assert layer_seed(5, 3, (8, 8, 3, 3)) != layer_seed(5, 4, (8, 8, 3, 3))
    torch.manual_seed(5)
    run_seeded = RBNNConv2d(RBNNConfig(seed=None), 8, 8, 3, layer_index=3)
    assert torch.equal(run_seeded.R1, a.R1)  # seed null = the run's seed (torch.initial_seed())
    ident = make_layer(8, 8, 3, rotation_init="identity")
    assert torch.equal(ident.R1, torch.eye(8)) and torch.equal(ident.R2, torch.eye(9))
    q = haar_orthogonal(50, torch.Generator().manual_seed(0))
    assert torch.allclose(q.T @ q, torch.eye(50, dtype=torch.float64), atol=1e-12)


def test_models_get_distinct_deterministic_rotations():
    def build():
        cfg = to_schema(RBNNConfig, OmegaConf.create({"name": "rbnn", "seed": 7}), "quantizer")
        return build_model(ModelConfig(name="resnet20"), ConvFactory(cfg), 10)

    one, two = build(), build()
    r1s = [layer.R1 for _, layer in quantized_layers(one)]
    assert all(torch.equal(a, layer.R1) for a, (_, layer) in zip(r1s, quantized_layers(two)))
    same_shape = [r for r, (_, layer) in zip(r1s, quantized_layers(one)) if layer.in_channels == 16]
    assert len(same_shape) >= 2 and not torch.equal(same_shape[0], same_shape[1])


# -- forward ----------------------------------------------------------------------------------------
def test_forward_is_conv_of_standardised_signs_times_lambda():
    torch.manual_seed(0)
    layer = gaussian_layer(6, 4, 3)
    with torch.no_grad():
        layer.theta.uniform_(0.5, 1.5)
        layer.scale.uniform_(0.5, 2.0)
    x = torch.randn(3, 4, 7, 7)
    w = layer.weight.detach()
    w_s = (w - w.mean(dim=(1, 2, 3), keepdim=True)) / w.std(dim=(1, 2, 3), keepdim=True, unbiased=True)
    rot = (torch.kron(layer.R1, layer.R2).T @ w_s.reshape(6, -1).T).T.reshape(w.shape)
    alpha = layer.theta.detach().sin().abs()
    w_t = (1 - alpha) * w_s + alpha * rot
    a_s = (x - x.mean(dim=(1, 2, 3), keepdim=True)) / x.std(dim=(1, 2, 3), keepdim=True, unbiased=True)
    expected = (
        F.conv2d(torch.where(a_s >= 0, 1.0, -1.0), torch.where(w_t >= 0, 1.0, -1.0), padding=1) * layer.scale.detach()
    )
    assert torch.allclose(layer(x), expected, atol=1e-5)
    assert torch.allclose(layer.latent_weight(), w_t, atol=1e-5)
    layer.eval()
    with torch.inference_mode():
        assert torch.allclose(layer(x), expected, atol=1e-5)


def test_output_invariant_to_input_and_weight_scale():
    torch.manual_seed(0)
    layer = gaussian_layer(6, 4, 3)
    x = torch.randn(2, 4, 6, 6)
    y = layer(x).detach()
    assert torch.equal(layer(3.7 * x).detach(), y)
    with torch.no_grad():
        layer.weight.mul_(0.01)
    assert torch.allclose(layer(x).detach(), y)


def test_full_precision_activations_and_no_standardisation():
    layer = make_layer(4, 4, 3, binary_activations=False)
    x = torch.randn(2, 4, 5, 5)
    assert torch.allclose(layer.quantize_input(x), standardize(x, (1, 2, 3)))
    raw = make_layer(4, 4, 3, act_standardize=False)
    assert torch.equal(raw.quantize_input(x), sign_pm1(x))
    const = torch.full((1, 4, 5, 5), 0.3)  # std = 0: no NaN, sign(0) = +1
    assert torch.equal(layer.quantize_input(const), torch.zeros_like(const))


def test_rotation_off_has_no_rotation_state():
    layer = make_layer(8, 8, 3, rotation=False)
    assert not hasattr(layer, "R1") and layer.storage().training_floats == {}
    assert torch.equal(layer.latent_weight(), layer.standardized_weight().detach())
    layer.epoch_start(0, 10)
    layer.step_start(0, 0)
    assert "rbnn_alpha_mean" not in layer.extra_stats()


def test_eval_cache_follows_weight_rotation_and_theta_changes():
    torch.manual_seed(0)
    layer = gaussian_layer(6, 4, 3)
    x = torch.randn(2, 4, 5, 5)

    def fresh():
        with torch.enable_grad():
            return layer(x).detach()

    layer.eval()
    with torch.no_grad():
        a = layer(x)
        first = layer._eval_cache[1]
        layer(x)
        assert layer._eval_cache[1] is first  # cached, not recomputed
        assert torch.equal(a, fresh())
        layer.weight.mul_(-1.0)
        assert torch.equal(layer(x), fresh()) and torch.allclose(layer(x), -a)
    layer.update_rotation()
    with torch.no_grad():
        assert torch.equal(layer(x), fresh())
        layer.theta.fill_(0.0)  # alpha = 0: the unrotated weight
        assert torch.equal(layer(x), fresh())


def test_rotation_update_under_autocast_stays_float32_orthogonal():
    layer = gaussian_layer(16, 16, 3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        layer.update_rotation()
    assert layer.R1.dtype == torch.float32
    assert (layer.R1.T @ layer.R1 - torch.eye(12)).abs().max().item() < 1e-5


# -- state, diagnostics, storage ----------------------------------------------------------------------
def test_checkpoint_state_restores_rotation_bit_for_bit_and_not_t_k():
    layer = gaussian_layer(8, 8, 3, seed=1)
    layer.epoch_start(3, 10)
    state = layer.state_dict()
    assert {"weight", "scale", "theta", "R1", "R2", "rotation_updates"} == set(state)  # t, k not persisted
    other = gaussian_layer(8, 8, 3, seed=2)
    assert not torch.equal(other.R1, layer.R1)
    other.load_state_dict(state)
    assert torch.equal(other.R1, layer.R1) and torch.equal(other.R2, layer.R2) and torch.equal(other.theta, layer.theta)
    assert other.rotation_updates.item() == 1
    assert other.weight_sign.t.item() == pytest.approx(0.01)  # recomputed by epoch_start on resume, not loaded


def test_extra_stats_and_histograms():
    layer = gaussian_layer(16, 16, 3)
    assert "rbnn_cos_before" not in layer.extra_stats()  # nothing measured before the first update
    layer.epoch_start(0, 10)
    stats = layer.extra_stats()
    expected = {
        "rbnn_t",
        "rbnn_k",
        "rbnn_act_t",
        "rbnn_act_k",
        "rbnn_alpha_mean",
        "rbnn_rotation_updates",
        "rbnn_cos_before",
        "rbnn_cos_after",
        "rbnn_rotation_flips",
        "rbnn_update_flips",
        "rbnn_objective_round0",
        "rbnn_objective_round1",
        "rbnn_objective_round2",
        "rbnn_objective_round3",
    }
    # the reviewers' Eq. 11 errors and theta's deviation (theta's gradient norm only once a step has run)
    expected |= {"quant_error_unrotated", "quant_error_rotated", "quant_error_mixed", "rbnn_theta_dev_max"}
    assert set(stats) == expected
    assert stats["rbnn_alpha_mean"].item() == 1.0
    assert stats["rbnn_cos_after"] >= stats["rbnn_cos_before"]
    objs = [stats[f"rbnn_objective_round{r}"].item() for r in range(4)]
    assert objs == sorted(objs)
    # cosine = J / (C sqrt(n (n-1))) for standardised filters
    assert stats["rbnn_cos_after"].item() == pytest.approx(objs[-1] / (16 * math.sqrt(144 * 143)), rel=1e-5)
    hists = layer.histograms()
    assert set(hists) == {"latent_weight", "rbnn_alpha"} and hists["rbnn_alpha"].shape == (16,)


# §1.2 table: binarized convs, R1+R2, theta, scale, total bytes
@pytest.mark.parametrize(
    "model,convs,rr,theta,scale,total_bytes",
    [
        ("resnet20", 18, 11_256, 672, 672, 50_400),
        ("resnet20_bireal", 18, 11_256, 672, 672, 50_400),
        ("resnet18_cifar", 19, 62_272, 4_736, 4_736, 286_976),
        ("vgg_small", 5, 23_136, 1_664, 1_664, 105_856),
        ("resnet18", 16, 61_312, 3_840, 3_840, 275_968),
        ("resnet34", 32, 128_320, 7_552, 7_552, 573_696),
    ],
)
def test_extra_floats_per_model(model, convs, rr, theta, scale, total_bytes):
    cfg = to_schema(RBNNConfig, OmegaConf.create({"name": "rbnn", "seed": 0}), "quantizer")
    net = build_model(ModelConfig(name=model), ConvFactory(cfg), 1000 if model in ("resnet18", "resnet34") else 10)
    layers = quantized_layers(net)
    assert len(layers) == convs
    storages = [layer.storage() for _, layer in layers]
    got_rr = sum(s.training_floats["R1"] + s.training_floats["R2"] for s in storages)
    got_theta = sum(s.training_floats["theta"] for s in storages)
    got_scale = sum(s.inference_floats for s in storages)
    assert (got_rr, got_theta, got_scale) == (rr, theta, scale)
    assert 4 * (got_rr + got_theta + got_scale) == total_bytes
    assert sum(layer.R1.numel() + layer.R2.numel() for _, layer in layers) == rr
    bits = model_bits(net)
    assert bits["params"]["training_only_fp32"] == rr + theta and bits["bits_per_weight"] == 1.0


# -- config ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kw,message",
    [
        ({"rotation_kind": "triple"}, "rotation_kind='triple' is not valid; choose one of: bi, full"),
        ({"update_interval": "batch"}, "choose one of: epoch, step"),
        ({"rotation_init": "random"}, "choose one of: haar, identity"),
        ({"alpha_mode": "sin"}, "choose one of: learned, fixed, unconstrained"),
        ({"weight_surrogate": "nope"}, "weight_surrogate='nope' is not valid"),
        ({"rounds": -1}, "rounds must be >= 0"),
        ({"update_frequency": 0}, "update_frequency must be >= 1"),
        ({"alpha_mode": "fixed", "alpha_value": 1.5}, "alpha_value must be in [0, 1]"),
        ({"alpha_mode": "fixed", "alpha_value": 1.0}, "no gradient at all"),
        ({"seed": -1}, "seed must be a non-negative integer"),
    ],
)
def test_bad_config_is_refused(kw, message):
    with pytest.raises(ValueError) as err:
        RBNNConfig(**kw)
    assert message in str(err.value)


def test_yaml_defaults_equal_the_schema_defaults_and_r_follows_the_run_seed():
    """quantizer=rbnn is RBNNConfig's defaults (seed None); R then comes from the run's seed, exactly as
    an R pinned to that seed (the YAML's former ``seed: ${seed}``)."""
    from binexp.config import validate
    from binexp.preflight import compose

    cfg = compose(["quantizer=rbnn", "data=synthetic", "seed=42"])
    assert set(cfg.quantizer) == set(RBNNConfig.__dataclass_fields__)
    assert validate(cfg).quantizer == RBNNConfig()
    assert validate(compose(["quantizer=rbnn", "data=synthetic", "seed=null"])).quantizer.seed is None
    torch.manual_seed(42)  # what seed_everything(42) does before the model is built
    run_seeded = RBNNConv2d(RBNNConfig(), 16, 32, 3, layer_index=4)
    torch.manual_seed(7)
    pinned = RBNNConv2d(RBNNConfig(seed=42), 16, 32, 3, layer_index=4)
    assert torch.equal(run_seeded.R1, pinned.R1) and torch.equal(run_seeded.R2, pinned.R2)
    torch.manual_seed(43)
    assert not torch.equal(RBNNConv2d(RBNNConfig(), 16, 32, 3, layer_index=4).R1, pinned.R1)


# -- torch.distributed: rank 0's rotation wins ---------------------------------------------------------------
RANK_SCRIPT = """
import sys, torch
from binexp.quant.rbnn import RBNNConfig, RBNNConv2d
rank, init, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
torch.distributed.init_process_group("gloo", init_method="file://" + init, rank=rank, world_size=2)
layer = RBNNConv2d(RBNNConfig(seed=rank), 16, 16, 3, 1, 1)  # different R on each rank
with torch.no_grad():
    layer.weight.copy_(torch.randn(layer.weight.shape, generator=torch.Generator().manual_seed(1000 + rank)))
layer.update_rotation()
torch.save({"R1": layer.R1, "R2": layer.R2}, out)
torch.distributed.destroy_process_group()
"""


def test_update_broadcasts_rank0_rotation(tmp_path):
    """Two gloo ranks with different weights and R: after the update both hold rank 0's R."""
    import subprocess
    import sys

    env = dict(os.environ, OMP_NUM_THREADS="1")
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", RANK_SCRIPT, str(r), str(tmp_path / "init"), str(tmp_path / f"r{r}.pt")],
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        for r in range(2)
    ]
    for p in procs:
        _, err = p.communicate(timeout=HANG_LIMIT)
        assert p.returncode == 0, err[-2000:]
    r0, r1 = torch.load(tmp_path / "r0.pt"), torch.load(tmp_path / "r1.pt")
    assert torch.equal(r0["R1"], r1["R1"]) and torch.equal(r0["R2"], r1["R2"])
    alone = gaussian_layer(16, 16, 3, seed=0)
    alone.update_rotation()
    assert torch.equal(alone.R1, r0["R1"]) and torch.equal(alone.R2, r0["R2"])  # rank 0 solved as it would alone
    other = gaussian_layer(16, 16, 3, seed=1)
    other.update_rotation()
    assert not torch.equal(other.R1, r0["R1"])  # without the broadcast rank 1 would hold this


def test_each_procrustes_step_reaches_the_nuclear_norm():
    """R1 maximises sum_c tr(B_c^T R1^T X_c R2) for fixed B, R2: the maximum over O(n1) is the
    nuclear norm of D1 (sum of its singular values); likewise R2 with the new R1 and the old B.
    This pins the SVD convention (torch.linalg.svd returns V^T) on non-symmetric factors."""
    g = torch.Generator().manual_seed(0)
    x = standardize(torch.randn(32, 16, 18, generator=g, dtype=torch.float64), (1, 2))
    r1, r2 = haar_orthogonal(16, g), haar_orthogonal(18, g)
    b = sign_pm1(rotate(x, r1, r2))
    res = rotation_rounds(x, r1, r2, rounds=1)
    s1, s2 = res.singular_values[0]
    after_r1 = (b * rotate(x, res.r1, r2)).sum().item()
    after_r2 = (b * rotate(x, res.r1, res.r2)).sum().item()
    assert after_r1 == pytest.approx(s1.sum().item(), rel=1e-10)
    assert after_r2 == pytest.approx(s2.sum().item(), rel=1e-10)
    assert after_r2 >= after_r1 >= (b * rotate(x, r1, r2)).sum().item()


@pytest.mark.parametrize("surrogate", ["rbnn", "approx_sign", "tanh"])
def test_activation_gradient_flows_through_the_per_sample_statistics(surrogate):
    """The fused activation path equals autograd through (x - mean) / std (unbiased) followed by
    the surrogate, in float64, so the gradient includes the statistics' terms."""
    layer = make_layer(4, 4, 3, act_surrogate=surrogate).double()
    layer.epoch_start(700, 1000)
    x = torch.randn(3, 4, 5, 5, dtype=torch.float64, requires_grad=True)
    g = torch.randn(3, 4, 5, 5, dtype=torch.float64)
    (layer.quantize_input(x) * g).sum().backward()
    ref_x = x.detach().clone().requires_grad_(True)
    a_s = (ref_x - ref_x.mean(dim=(1, 2, 3), keepdim=True)) / ref_x.std(dim=(1, 2, 3), keepdim=True, unbiased=True)
    (layer.act_sign(a_s) * g).sum().backward()
    assert torch.allclose(x.grad, ref_x.grad, atol=1e-12)
    # the statistics matter: the naive g F'(a_s) / std differs
    naive = g * layer.act_sign.derivative(a_s.detach()) / ref_x.detach().std(dim=(1, 2, 3), keepdim=True)
    assert not torch.allclose(x.grad, naive, atol=1e-3)
    # per-sample: sample 0's gradient does not depend on sample 1's values
    assert torch.equal(layer.quantize_input(x)[0], sign_pm1(a_s[0]))


def test_forward_under_autocast_keeps_the_weight_path_in_float32():
    torch.manual_seed(0)
    layer = gaussian_layer(8, 8, 3)
    with torch.no_grad():
        layer.theta.fill_(1.0)
    x = torch.randn(2, 8, 6, 6)
    ref = layer.quantized_weight().detach()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = layer(x)
        q = layer.quantized_weight()
    assert q.dtype == torch.float32 and torch.equal(q.detach(), ref)
    # +-1 products summed over 72 inputs are exact integers in bfloat16: same output as float32
    assert torch.equal(out.float(), layer(x))
