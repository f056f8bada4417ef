"""FleXOR: XOR decryption, surrogate gradients, bit accounting and export pinned to exact
values (FleXOR, arXiv:2009.04690, Sec. 3 and Algorithm 1)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from torch import nn

from binexp.analysis.accounting import model_bits
from binexp.models import build_model
from binexp.models.registry import ModelConfig
from binexp.quant import ConvFactory, gf2, quantized_layers
from binexp.quant.flexor import FlexorConfig, FlexorConv2d, taps_of, xor_decrypt_pm1, xor_matrix, xor_pm1
from binexp.quant.flexor_export import claimed_bytes, pack_model, unpack

FIG2 = np.array([[int(c) for c in row] for row in ["1011", "1100", "1110", "0011", "0101", "0111"]], dtype=np.uint8)


def make_layer(c_in=1, c_out=1, k=1, **kw) -> FlexorConv2d:
    kw.setdefault("seed", 0)
    kw.setdefault("allow_over_one_bit", True)  # the layer's arithmetic is tested for any n_in, n_out
    return FlexorConv2d(FlexorConfig(**kw), c_in, c_out, k)


def set_encrypted(layer: FlexorConv2d, values) -> None:
    with torch.no_grad():
        layer.encrypted.copy_(torch.as_tensor(values, dtype=torch.float32).view_as(layer.encrypted))


def reference_bits(layer: FlexorConv2d) -> np.ndarray:
    """Independent decryption: integer GF(2) product of the stored sign bits, then the paper's
    layout written out by hand. Returns (q, C_out, C_in, kh, kw) in {0, 1}."""
    c_out, c_in, kh, kw = layer.weight_shape
    n = c_out * c_in * kh * kw
    x = (layer.encrypted.detach().numpy() >= 0).astype(np.uint8)
    out = np.zeros((layer.q, c_out, c_in, kh, kw), dtype=np.uint8)
    for p in range(layer.q):
        m = layer.xor_matrix[p].numpy()
        y = np.concatenate([gf2.matmul(m, x[p, s]) for s in range(layer.n_slices)])[:n]
        for idx in range(n):
            if layer.flatten_order == "torch":
                o, i, h, w = np.unravel_index(idx, (c_out, c_in, kh, kw))
            else:
                h, w, i, o = np.unravel_index(idx, (kh, kw, c_in, c_out))
            out[p, o, i, h, w] = y[idx]
    return out


# -- the +-1 XOR ---------------------------------------------------------------------------


def test_two_input_truth_table():
    table = {(-1, -1): -1, (-1, 1): 1, (1, -1): 1, (1, 1): -1}
    for (a, b), y in table.items():
        assert xor_pm1(torch.tensor(float(a)), torch.tensor(float(b))).item() == y


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_n_input_xor_equals_boolean_xor(n):
    for bits in itertools.product((0, 1), repeat=n):
        pm = [torch.tensor(2.0 * b - 1) for b in bits]
        assert xor_pm1(*pm).item() == 2 * (sum(bits) % 2) - 1


def test_fig2_decryption_table_in_both_domains():
    expected = {"0000": "000000", "1000": "111000", "1100": "100011", "1011": "110010", "1111": "101001"}
    taps, row_sign = taps_of(FIG2)
    for x, y in expected.items():
        xb = np.array([int(c) for c in x])
        assert "".join(map(str, gf2.matmul(FIG2, xb))) == y
        pm = xor_decrypt_pm1(torch.tensor(2.0 * xb - 1).float()[None], taps, row_sign)[0]
        assert pm.tolist() == [2.0 * int(c) - 1 for c in y]
    assert xor_decrypt_pm1(torch.tensor([[1.0, 1, -1, -1]]), taps, row_sign)[0].tolist() == [1, -1, -1, -1, 1, 1]


# -- training forward == integer XOR decryption ----------------------------------------------


@pytest.mark.parametrize("flatten", ["tf", "torch"])
@pytest.mark.parametrize("q", [1, 2])
@pytest.mark.parametrize(
    "policy,n_in,n_out,n_tap",
    [
        ("unconstrained", 12, 20, 2),
        ("no_unused", 7, 11, 3),
        ("full_rank", 24, 20, 2),
        ("bernoulli", 5, 7, 2),
        ("cyclic", 8, 11, 3),
    ],
)
def test_forward_equals_integer_xor(flatten, q, policy, n_in, n_out, n_tap):
    torch.manual_seed(1)
    # 6*5*3*3 = 270 weights: not a multiple of any n_out here (partial last slice)
    layer = make_layer(5, 6, 3, n_in=n_in, n_out=n_out, n_tap=n_tap, q=q, flatten=flatten, xor_policy=policy, seed=3)
    assert layer.num_weights % n_out != 0
    with torch.no_grad():
        layer.encrypted.normal_()
        layer.encrypted[0, 0, 0] = 0.0  # sign(0) = +1
        layer.alpha.uniform_(0.1, 1.0)
    ref = reference_bits(layer)
    planes = layer.bit_planes().detach()
    assert torch.equal(planes, torch.from_numpy(ref).float() * 2 - 1)
    expected_w = (layer.alpha.detach().view(q, -1, 1, 1, 1) * planes).sum(0)
    assert torch.equal(layer.quantized_weight().detach(), expected_w)
    # the export path (packbits + integer XOR) rebuilds the same weight bit for bit
    model = nn.Sequential(layer)
    [ex] = unpack(pack_model(model))
    assert np.array_equal(ex.decrypted_bits(), ref)
    assert torch.equal(ex.weight(), layer.quantized_weight().detach())


@pytest.mark.parametrize("scheme", ["flexor", "analog", "ste"])
def test_every_scheme_has_the_same_forward(scheme):
    torch.manual_seed(0)
    layer = make_layer(4, 8, 3, n_in=8, n_out=10, scheme=scheme)
    with torch.no_grad():
        layer.encrypted.normal_(0, 0.1)
    assert torch.equal(layer.bit_planes().detach(), torch.from_numpy(reference_bits(layer)).float() * 2 - 1)


# -- surrogate gradients ---------------------------------------------------------------------


def two_tap(scheme="flexor", xa=0.1, xb=-0.3, s=10.0):
    layer = make_layer(n_in=2, n_out=1, n_tap=2, scheme=scheme, s_tanh=s, alpha_init=1.0)
    set_encrypted(layer, [xa, xb])
    layer.quantized_weight().sum().backward()
    return layer.quantized_weight().item(), layer.encrypted.grad.flatten().tolist()


def test_two_tap_surrogate_gradient_matches_reference_numbers():
    # y = -(s_a s_b); dy/dx_a = -S(1-tanh^2(S x_a)) s_b, dy/dx_b = -S(1-tanh^2(S x_b)) s_a
    y, (ga, gb) = two_tap()
    assert y == 1.0  # XOR(1, 0) = 1 -> +1
    assert ga == pytest.approx(4.1997, abs=5e-5)
    assert gb == pytest.approx(-0.09866, abs=5e-6)
    formula = lambda x, other: -10 * (1 - math.tanh(10 * x) ** 2) * (1.0 if other >= 0 else -1.0)  # noqa: E731
    assert ga == pytest.approx(formula(0.1, -0.3), rel=1e-5) and gb == pytest.approx(formula(-0.3, 0.1), rel=1e-5)


def test_gradient_sums_over_the_gates_an_input_feeds():
    torch.manual_seed(0)
    layer = make_layer(3, 4, 3, n_in=6, n_out=9, n_tap=3, xor_policy="bernoulli", s_tanh=7.0)
    with torch.no_grad():
        layer.encrypted.normal_(0, 0.2)
    g = torch.randn(layer.weight_shape)
    (layer.quantized_weight() * g).sum().backward()
    # brute force: per slice, per gate, per tapped input
    x = layer.encrypted.detach()[0].double()
    m = layer.xor_matrix[0].numpy()
    gflat = torch.zeros(layer.n_slices * layer.n_out, dtype=torch.float64)
    gflat[: layer.num_weights] = (g * layer.alpha.detach().view(-1, 1, 1, 1)).permute(2, 3, 1, 0).reshape(-1).double()
    expected = torch.zeros_like(x)
    sgn = torch.where(x >= 0, 1.0, -1.0).double()
    for sl in range(layer.n_slices):
        for r in range(layer.n_out):
            cols = np.flatnonzero(m[r])
            for j in cols:
                others = torch.prod(sgn[sl, [k for k in cols if k != j]])
                d = 7.0 * (1 - torch.tanh(7.0 * x[sl, j]) ** 2)
                expected[sl, j] += gflat[sl * layer.n_out + r] * (-1) ** (len(cols) - 1) * d * others
    assert torch.allclose(layer.encrypted.grad[0].double(), expected, rtol=1e-5, atol=1e-6)


def test_one_tap_flexor_equals_analog_autograd():
    for x in (0.03, -0.07, 0.2):
        flex = make_layer(n_in=1, n_out=1, n_tap=1, alpha_init=1.0)
        ana = make_layer(n_in=1, n_out=1, n_tap=1, alpha_init=1.0, scheme="analog")
        for layer in (flex, ana):
            set_encrypted(layer, [x])
            layer.quantized_weight().sum().backward()
        assert flex.encrypted.grad.item() == pytest.approx(ana.encrypted.grad.item(), rel=1e-6)
        assert flex.encrypted.grad.item() == pytest.approx(10 * (1 - math.tanh(10 * x) ** 2), rel=1e-6)


def test_flexor_and_analog_agree_when_other_inputs_saturate_and_differ_otherwise():
    _, (flex_a, _) = two_tap("flexor", 0.1, -1.0)
    _, (ana_a, _) = two_tap("analog", 0.1, -1.0)  # tanh(-10) = -1 + 4e-9
    assert ana_a == pytest.approx(flex_a, rel=1e-6) and flex_a == pytest.approx(4.1997, abs=5e-5)
    _, (flex_a, flex_b) = two_tap("flexor", 0.1, -0.01)
    _, (ana_a, ana_b) = two_tap("analog", 0.1, -0.01)
    # analog: -S(1-tanh^2(S x_a)) tanh(S x_b) = 4.1997 * tanh(0.1) = 0.41858
    assert ana_a == pytest.approx(4.19974 * math.tanh(0.1), rel=1e-4) and ana_a == pytest.approx(0.41858, abs=1e-4)
    assert flex_a == pytest.approx(4.1997, abs=5e-5)  # sign(x_b) = -1 replaces tanh(-0.1)
    # d/dx_b: flexor -S(1-tanh^2(-0.1)) * sign(0.1) = -9.9007; analog -9.9007 * tanh(1.0) = -7.5404
    assert flex_b == pytest.approx(-9.90066, abs=1e-4) and ana_b == pytest.approx(-7.54036, abs=1e-4)


def test_ste_scheme_passes_the_other_signs_only():
    _, (ga, gb) = two_tap("ste", 0.1, -0.3)
    assert (ga, gb) == (1.0, -1.0)  # -s_b, -s_a


def test_any_registered_surrogate_can_drive_the_encrypted_signs():
    # approx_sign F'(x) = max(0, 2 - 2|x|); y = -(s_a s_b): dy/dx_a = -F'(x_a) s_b, dy/dx_b = -F'(x_b) s_a
    layer = make_layer(n_in=2, n_out=1, n_tap=2, weight_surrogate="approx_sign", alpha_init=1.0)
    set_encrypted(layer, [0.1, -0.3])
    layer.quantized_weight().sum().backward()
    assert layer.quantized_weight().item() == 1.0
    assert layer.encrypted.grad.flatten().tolist() == pytest.approx([1.8, -1.4], rel=1e-6)
    with pytest.raises(ValueError, match="weight_surrogate applies to the digital XOR"):
        FlexorConfig(scheme="analog", weight_surrogate="ste")
    with pytest.raises(ValueError, match="quantizer.weight_surrogate='magic'"):
        FlexorConfig(weight_surrogate="magic")


def test_identity_matrix_reduces_to_per_channel_binarization():
    torch.manual_seed(0)
    for flatten in ("tf", "torch"):
        layer = make_layer(3, 4, 3, n_in=20, n_out=20, n_tap=1, flatten=flatten)  # 108 weights: 6 slices, 12 dropped
        layer.set_xor_matrix(np.eye(20, dtype=np.uint8))
        with torch.no_grad():
            layer.encrypted.normal_(0, 0.1)
            layer.alpha.copy_(torch.tensor([[0.5, 1.0, 2.0, 3.0]]))
        flat = layer.encrypted.reshape(-1)[: layer.num_weights]
        latent = flat.reshape(4, 3, 3, 3) if flatten == "torch" else flat.reshape(3, 3, 3, 4).permute(3, 2, 0, 1)
        alpha = layer.alpha.view(4, 1, 1, 1)
        w = layer.quantized_weight()
        assert torch.equal(w.detach(), (alpha * torch.where(latent >= 0, 1.0, -1.0)).detach())
        g = torch.randn_like(w)
        (w * g).sum().backward()
        expected = (g * alpha * 10 * (1 - torch.tanh(10 * latent) ** 2)).detach()
        if flatten == "torch":
            got = layer.encrypted.grad.reshape(-1)[: layer.num_weights].reshape(4, 3, 3, 3)
        else:
            got = layer.encrypted.grad.reshape(-1)[: layer.num_weights].reshape(3, 3, 3, 4).permute(3, 2, 0, 1)
        assert torch.allclose(got, expected, rtol=1e-5, atol=1e-6)
        assert torch.all(layer.encrypted.grad.reshape(-1)[layer.num_weights :] == 0)  # dropped bits get no gradient


def test_q2_weight_levels():
    torch.manual_seed(0)
    layer = make_layer(8, 2, 3, n_in=20, n_out=20, q=2)
    with torch.no_grad():
        layer.encrypted.normal_()
        layer.alpha.copy_(torch.tensor([[0.3, 0.5], [0.1, 0.2]]))
    w = layer.quantized_weight().detach()
    for c, (a1, a2) in enumerate([(0.3, 0.1), (0.5, 0.2)]):
        levels = sorted({round(v, 5) for v in w[c].flatten().tolist()})
        assert levels == sorted(round(s1 * a1 + s2 * a2, 5) for s1 in (-1, 1) for s2 in (-1, 1))
    equal = make_layer(8, 2, 3, n_in=20, n_out=20, q=2, alpha_init=0.25)
    with torch.no_grad():
        equal.encrypted.normal_()
    assert sorted(set(equal.quantized_weight().detach().flatten().tolist())) == [-0.5, 0.0, 0.5]


# -- the XOR network and its diagnostics ---------------------------------------------------------


def test_fig2_rank_and_unused_inputs():
    assert gf2.rank(FIG2) == 4
    assert gf2.unused_share(FIG2) == 0.0
    hand = np.array([[1, 1, 0, 0], [1, 1, 0, 0], [0, 1, 1, 0]])
    assert gf2.rank(hand) == 2 and list(gf2.unused_columns(hand)) == [3] and gf2.unused_share(hand) == 0.25
    assert gf2.rank(np.eye(5)) == 5 and gf2.rank(np.ones((4, 4))) == 1 and gf2.rank(np.zeros((3, 3))) == 0


def test_even_taps_lose_a_bit():
    for seed in range(30):
        m = xor_matrix(20, 20, 2, 0, seed)
        assert gf2.rank(m) <= 19 and (m.sum(1) == 2).all()
        assert gf2.rank(xor_matrix(8, 20, 2, 0, seed)) <= 7
    assert gf2.max_rank(20, 20, 2) == 19 and gf2.max_rank(8, 20, 3) == 8 and gf2.max_rank(4, 4, 4) == 1
    assert gf2.rank(xor_matrix(8, 20, 2, 0, 0, "full_rank")) == 7
    assert gf2.rank(xor_matrix(20, 20, 1, 0, 0, "full_rank")) == 20  # a permutation


def test_no_unused_policy_uses_every_input():
    for seed in range(10):
        m = xor_matrix(20, 10, 2, 0, seed, "no_unused")  # 20 slots for 20 inputs: a perfect cover
        assert gf2.unused_share(m) == 0 and (m.sum(1) == 2).all()


def test_layer_report_with_a_hand_made_matrix():
    layer = make_layer(1, 6, 1, n_in=4, n_out=6, n_tap=2)  # 6 weights, one slice
    m = np.array([[1, 1, 0, 0]] * 3 + [[0, 1, 1, 0]] * 3)  # rank 2, column 3 unused
    layer.set_xor_matrix(m)
    r = layer.report()
    assert r["xor_rank"] == [2] and r["unused_input_share"] == 0.25
    assert r["bits_per_weight"] == pytest.approx(4 / 6, abs=1e-6)
    assert r["effective_bits_per_weight"] == pytest.approx(2 / 6, abs=1e-6)
    assert r["bits_per_weight_with_alpha"] == pytest.approx((4 + 32 * 6) / 6, abs=1e-6)
    assert r["dropped_bits"] == 0


def test_matrix_is_a_function_of_the_settings_and_the_seed():
    a = make_layer(16, 16, 3, n_in=12, seed=5)
    b = make_layer(16, 32, 3, n_in=12, seed=5)
    assert torch.equal(a.xor_matrix, b.xor_matrix)  # shared by layers with the same settings
    assert not torch.equal(a.xor_matrix, make_layer(16, 16, 3, n_in=12, seed=6).xor_matrix)
    two = make_layer(16, 16, 3, n_in=12, seed=5, q=2)
    assert torch.equal(two.xor_matrix[0], a.xor_matrix[0]) and not torch.equal(two.xor_matrix[0], two.xor_matrix[1])
    shared = make_layer(16, 16, 3, n_in=12, seed=5, q=2, plane_matrices="shared")
    assert torch.equal(shared.xor_matrix[0], shared.xor_matrix[1])
    torch.manual_seed(1234)  # seed=null: the run's seed (what seed_everything set)
    assert torch.equal(
        make_layer(16, 16, 3, n_in=12, seed=None).xor_matrix, make_layer(16, 16, 3, n_in=12, seed=1234).xor_matrix
    )


def test_in_place_copy_of_the_matrix_is_picked_up_at_epoch_start():
    # init_from copies a source run's tensors into state_dict() in place: no load_state_dict hook
    src = make_layer(4, 8, 3, n_in=8, n_out=10, seed=1)
    dst = make_layer(4, 8, 3, n_in=8, n_out=10, seed=2)
    with torch.no_grad():
        src.encrypted.normal_()
        for k, v in dst.state_dict().items():
            v.copy_(src.state_dict()[k])
    assert torch.equal(dst.xor_matrix, src.xor_matrix) and not torch.equal(dst.taps, src.taps)
    dst.epoch_start(0, 1)
    assert torch.equal(dst.taps, src.taps) and torch.equal(dst.row_sign, src.row_sign)
    assert torch.equal(dst.quantized_weight(), src.quantized_weight())
    assert torch.equal(dst.bit_planes(), torch.from_numpy(reference_bits(dst)).float() * 2 - 1)


def test_state_dict_restores_the_matrix_and_the_gather_form():
    src = make_layer(4, 8, 3, n_in=8, n_out=10, seed=1)
    dst = make_layer(4, 8, 3, n_in=8, n_out=10, seed=2)
    with torch.no_grad():
        src.encrypted.normal_()
    assert not torch.equal(src.taps, dst.taps)
    dst.load_state_dict(src.state_dict())
    assert torch.equal(dst.taps, src.taps) and torch.equal(dst.quantized_weight(), src.quantized_weight())


# -- schedules -----------------------------------------------------------------------------------


def test_s_tanh_warmup_doubling_and_clipping():
    layer = make_layer(4, 4, 3, s_tanh=10.0, s_tanh_start=5.0, s_tanh_warmup_epochs=100)
    expected = {(0, 0): 5.0, (50, 0): 7.5, (100, 0): 10.0, (400, 0): 10.0, (360, 1): 20.0, (460, 3): 80.0}
    for (epoch, decays), s in expected.items():
        layer.epoch_start(epoch, 500, decays)
        assert layer.tanh_sign.s.item() == pytest.approx(s)
    layer.epoch_start(360, 500, 1)  # S = 20: clip at 2/20 = 0.1
    with torch.no_grad():
        layer.encrypted.normal_(0, 1)
        before = layer.encrypted.clone()
    layer.step_end(360, 0)
    assert layer.encrypted.abs().max().item() == pytest.approx(0.1)
    assert torch.equal(torch.sign(layer.encrypted), torch.sign(before))
    plain = make_layer(4, 4, 3, s_tanh_double_at_decay=False, clip_encrypted=False)
    plain.epoch_start(10, 20, 2)
    assert plain.tanh_sign.s.item() == 10.0
    with torch.no_grad():
        plain.encrypted.fill_(3.0)
    plain.step_end(10, 0)
    assert plain.encrypted.max().item() == 3.0


def test_weight_decay_on_encrypted_only():
    from binexp.lit.module import ClassifierModule
    from binexp.optimizer import ScheduleConfig, build_optimizer

    sched = ScheduleConfig(lr=0.1, weight_decay=0.5, momentum=0.9)
    everything = ClassifierModule(ModelConfig(name="resnet20"), FlexorConfig(seed=0), sched, 10)
    assert len(build_optimizer(sched, everything.optimizer_params()).param_groups) == 1
    torch.manual_seed(0)
    module = ClassifierModule(
        ModelConfig(name="resnet20"), FlexorConfig(seed=0, weight_decay_on="encrypted"), sched, 10
    )
    opt = build_optimizer(sched, module.optimizer_params())
    decayed, rest = opt.param_groups
    layers = [layer for _, layer in quantized_layers(module.net)]
    assert [id(p) for p in decayed["params"]] == [id(layer.encrypted) for layer in layers]
    assert decayed["weight_decay"] == 0.5 and rest["weight_decay"] == 0.0
    assert len(decayed["params"]) + len(rest["params"]) == len(list(module.parameters()))
    before = {id(p): p.detach().clone() for p in module.parameters()}
    for p in module.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()  # zero gradient: p <- p - lr * wd * p on the decayed group only
    for p in decayed["params"]:
        assert torch.allclose(p, before[id(p)] * 0.95, rtol=1e-6, atol=0)
    for p in rest["params"]:
        assert torch.equal(p, before[id(p)])
    assert layers[0].alpha.flatten()[0].item() == pytest.approx(0.2)
    with pytest.raises(ValueError, match="quantizer.weight_decay_on='alpha'"):
        FlexorConfig(weight_decay_on="alpha")


def test_binary_activations_option():
    layer = make_layer(2, 2, 3, binary_activations=True)
    x = torch.randn(1, 2, 5, 5)
    assert set(layer.quantize_input(x).unique().tolist()) <= {-1.0, 1.0}
    assert torch.equal(make_layer(2, 2, 3).quantize_input(x), x)


def test_bad_config_values_are_rejected():
    with pytest.raises(ValueError, match="n_tap=3 exceeds n_in=2"):
        FlexorConfig(n_in=2, n_tap=3)
    with pytest.raises(ValueError, match="quantizer.scheme='magic'"):
        FlexorConfig(scheme="magic")
    with pytest.raises(ValueError, match="no entry for stage 3"):
        FlexorConv2d(FlexorConfig(n_in_per_stage=[4, 4, 4], seed=0), 4, 4, 3, stage=3)


# -- model-level bits ----------------------------------------------------------------------------


def flexor_net(model="resnet20", **kw):
    kw.setdefault("seed", 0)
    return build_model(ModelConfig(name=model), ConvFactory(FlexorConfig(**kw)), 10)


@pytest.mark.parametrize("n_in,bits", [(8, 0.4003), (12, 0.6005), (16, 0.8006), (20, 1.0008), (4, 0.2002)])
def test_resnet20_bits_per_weight_include_the_ceil(n_in, bits):
    b = model_bits(flexor_net(n_in=n_in, n_out=20))
    assert b["bits_per_weight"] == bits
    assert b["params"]["binarized_weights"] == 267_264
    # alpha: 672 output channels at 32 bits
    assert (
        b["bits_per_weight_with_scales"] == round(bits + 672 * 32 / 267_264, 4)
        or abs(b["bits_per_weight_with_scales"] - (bits + 672 * 32 / 267_264)) < 2e-4
    )
    rep = b["method_report"]
    assert rep["flexor_layers"] == 18 and rep["flexor_bits_per_weight"] == pytest.approx(bits, abs=1e-4)
    # every layer has the same settings, hence the same M: effective bits = bits * rank / N_in
    ranks = {tuple(r["xor_rank"]) for r in b["layer_reports"].values()}
    assert len(ranks) == 1
    [(rank,)] = ranks
    assert rank <= n_in - 1  # N_tap = 2: even rows
    assert rep["flexor_effective_bits_per_weight"] == pytest.approx(
        rep["flexor_bits_per_weight"] * rank / n_in, abs=2e-6
    )


def test_per_stage_n_in_table2():
    net = flexor_net(n_in_per_stage=[19, 16, 7], n_out=20)
    layers = quantized_layers(net)
    assert [layer.n_in for _, layer in layers] == [19] * 6 + [16] * 6 + [7] * 6
    # 13,824 / 50,688 / 202,752 weights at 19/16/7 of 20 (plus ceil) ~ 0.4669
    assert model_bits(net)["bits_per_weight"] == pytest.approx(0.4669, abs=1e-4)


def test_export_size_matches_claimed_bits():
    torch.manual_seed(0)
    net = flexor_net(n_in=8, n_out=20)
    data = pack_model(net)
    claimed = claimed_bytes(net)
    assert claimed == pytest.approx(267_264 * 0.4003 / 8 + 4 * 672, rel=1e-3)
    assert abs(len(data) - claimed) / claimed < 0.05
    layers = unpack(data)
    assert len(layers) == 18 and all(ex.n_in == 8 for ex in layers)


def test_cyclic_xor_matrix_is_structured_full_rank_and_uses_every_input():
    """xor_policy=cyclic: row r taps r and r + d (mod N_in), d = 1 + r // N_in; no seed."""
    from binexp.quant import gf2
    from binexp.quant.flexor import xor_matrix

    m = xor_matrix(16, 20, 2, seed=0, policy="cyclic")
    assert np.array_equal(m, xor_matrix(16, 20, 2, seed=7, policy="cyclic"))  # no randomness
    assert [list(np.flatnonzero(row)) for row in m[[0, 15, 16, 19]]] == [[0, 1], [0, 15], [0, 2], [3, 5]]
    assert (m.sum(1) == 2).all() and (m.sum(0) >= 1).all() and len({row.tobytes() for row in m}) == 20
    assert gf2.rank(m) == gf2.max_rank(16, 20, 2) == 15  # even taps: N_in - 1 at most, reached
    assert gf2.rank(xor_matrix(8, 20, 3, policy="cyclic")) == 8
