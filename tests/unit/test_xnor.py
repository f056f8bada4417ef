"""XNOR-Net forward and gradients pinned to exact values (XNOR-Net, arXiv:1603.05279, Sec. 3.1-3.2)."""

import pytest
import torch
import torch.nn.functional as F

from binexp.quant.xnor import XnorConfig, XnorConv2d
from tests.unit.official_golden import GOLDEN, IN, OUT, SPEC, assert_matches, run, run_linear, with_weight

W = [0.5, -1.5, 1.0, -0.2]
G = [1.0, 2.0, 3.0, 4.0]


def layer(**kw) -> XnorConv2d:
    conv = XnorConv2d(XnorConfig(**kw), in_channels=1, out_channels=1, kernel_size=2)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor(W).view(1, 1, 2, 2))
    return conv


def weight_grad(conv: XnorConv2d) -> list[float]:
    q = conv.quantized_weight()
    (q * torch.tensor(G).view(1, 1, 2, 2)).sum().backward()
    return conv.weight.grad.flatten().tolist()


def test_forward_alpha_is_mean_abs_per_channel():
    conv = layer()
    assert conv.quantized_weight().flatten().tolist() == pytest.approx([0.8, -0.8, 0.8, -0.8])
    two = XnorConv2d(XnorConfig(), 1, 2, 1)
    with torch.no_grad():
        two.weight.copy_(torch.tensor([[[[2.0]]], [[[-0.5]]]]))
    assert two.quantized_weight().flatten().tolist() == [2.0, -0.5]


def test_exact_weight_gradient_couples_through_alpha():
    # alpha*F'(w_j)*g_j + sign(w_j)/n * sum_i g_i sign(w_i); sum g*s = -2, F' = [1, 0, 1, 1] (edge |w|=1 passes)
    assert weight_grad(layer(weight_grad="exact")) == pytest.approx([0.3, 0.5, 1.9, 3.7])


def test_paper_weight_gradient():
    # g * (1/n + alpha * F'(w))
    assert weight_grad(layer(weight_grad="paper")) == pytest.approx([1.05, 0.5, 3.15, 4.2])


def test_detached_weight_gradient():
    assert weight_grad(layer(weight_grad="detached")) == pytest.approx([0.8, 0.0, 2.4, 3.2])


def test_input_sign_and_clipped_ste():
    conv = layer()
    x = torch.tensor([-1.5, -1.0, 0.0, 0.7, 1.0, 2.0], requires_grad=True)
    y = conv.quantize_input(x)
    assert y.tolist() == [-1.0, -1.0, 1.0, 1.0, 1.0, 1.0]  # sign(0) = +1
    y.sum().backward()
    assert x.grad.tolist() == [0.0, 1.0, 1.0, 1.0, 1.0, 0.0]


def test_full_forward_is_conv_of_signs():
    torch.manual_seed(0)
    conv = XnorConv2d(XnorConfig(), 3, 4, 3, stride=1, padding=1)
    x = torch.randn(2, 3, 5, 5)
    x[0, 0, 0, 0] = 0.0
    w = conv.weight
    alpha = w.abs().mean(dim=(1, 2, 3), keepdim=True)
    expected = F.conv2d(torch.where(x >= 0, 1.0, -1.0), alpha * torch.where(w >= 0, 1.0, -1.0), padding=1)
    assert torch.allclose(conv(x), expected, atol=1e-6)


def test_fp_activations_option():
    conv = layer(binary_activations=False)
    x = torch.tensor([[[[0.3, -0.2], [0.1, 0.4]]]])
    assert conv(x).item() == pytest.approx(0.8 * (0.3 + 0.2 + 0.1 - 0.4))  # weights +a, -a, +a, -a


def test_activation_scale_k_equals_input_magnitude_away_from_border():
    conv = XnorConv2d(XnorConfig(act_scale="K"), 2, 1, 3, padding=1)
    with torch.no_grad():
        conv.weight.fill_(0.5)
    x = torch.full((1, 2, 6, 6), -0.7)
    out = conv(x)
    # sign(x) = -1 everywhere; interior: sum of 18 products (-1 * 0.5) = -9, times K = 0.7
    assert out[0, 0, 2, 2].item() == pytest.approx(-9 * 0.7)
    # corner: 4 of 9 positions inside -> conv = -4, K = 0.7 * 4/9
    assert out[0, 0, 0, 0].item() == pytest.approx(-4 * 0.5 * 2 * 0.7 * 4 / 9)


def test_surrogate_is_selectable():
    conv = layer(act_surrogate="approx_sign")
    x = torch.tensor([0.0, 0.5, 1.0], requires_grad=True)
    conv.quantize_input(x).sum().backward()
    assert x.grad.tolist() == [2.0, 1.0, 0.0]


@pytest.mark.parametrize("bad", [{"weight_grad": "nope"}, {"act_scale": "k"}, {"act_surrogate": "relu"}])
def test_bad_choices_are_rejected(bad):
    with pytest.raises(ValueError, match="choose one of"):
        XnorConfig(**bad)


# -- BiBench's XNOR reading: act_scale=sample_mean act_grad=straight weight_grad=unscaled ------
BIBENCH = {"act_scale": "sample_mean", "act_grad": "straight", "weight_grad": "unscaled"}
W2 = [0.3, -0.6, 0.9, -1.2, -0.05, 0.15, 0.4, 0.25]  # (2, 1, 2, 2)
G2 = [1.0, -2.0, 0.5, 1.0, 2.0, 1.0, -1.0, 0.5]


def two_channel(**kw) -> XnorConv2d:
    conv = XnorConv2d(XnorConfig(**kw), 1, 2, 2)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor(W2).view(2, 1, 2, 2))
    return conv


def test_bibench_weights_alpha_detached_gradient_without_alpha():
    conv = two_channel(**BIBENCH)
    q = conv.quantized_weight()
    assert q.flatten().tolist() == pytest.approx([0.75, -0.75, 0.75, -0.75, -0.2125, 0.2125, 0.2125, 0.2125])
    (q * torch.tensor(G2).view_as(q)).sum().backward()
    assert conv.weight.grad.flatten().tolist() == [1.0, -2.0, 0.5, 0.0, 2.0, 1.0, -1.0, 0.5]


@pytest.mark.parametrize("act_grad,expected", [("straight", [1.0, 0.0, 1.0, 1.0]), ("scaled", [1.0, 0.0, 0.3, 0.3])])
def test_sample_mean_activation_scale(act_grad, expected):
    conv = two_channel(act_scale="sample_mean", act_grad=act_grad)
    x = torch.tensor([[[[0.5, -1.5]]], [[[0.2, 0.4]]]], requires_grad=True)  # beta = [1.0, 0.3]
    y = conv.quantize_input(x)
    assert y.flatten().tolist() == pytest.approx([1.0, -1.0, 0.3, 0.3])
    y.sum().backward()
    assert x.grad.flatten().tolist() == pytest.approx(expected)


def test_straight_activation_gradient_needs_sample_mean():
    with pytest.raises(ValueError, match="act_grad=straight applies to act_scale=sample_mean only"):
        XnorConfig(act_grad="straight")


def test_bibench_reading_matches_bibench_golden():
    conv = XnorConv2d(XnorConfig(**BIBENCH), SPEC.in_channels, SPEC.out_channels, SPEC.kernel_size, 1, SPEC.padding)
    assert_matches(run(with_weight(conv)), GOLDEN["xnor_bibench"])


def test_bibench_xnor_linear_is_centred_with_both_scales_in_the_gradient():
    # BiBench's XNORLinear differs from its XNORConv2d: sign first, then times the detached scales
    from binexp.quant.xnor import XnorLinear

    cfg = XnorConfig(act_scale="sample_mean", act_grad="scaled", weight_grad="detached", center_weights=True)
    assert_matches(run_linear(XnorLinear(cfg, IN, OUT), rows=True), GOLDEN["xnor_linear"])
