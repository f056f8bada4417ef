"""Bi-Real Net quantizer: forward and every weight-gradient variant pinned to exact values and
to autograd of their definitions (Bi-Real Net, arXiv:1808.00278, Sec. 3.2, Eq. 5-8)."""

from dataclasses import asdict

import pytest
import torch
import torch.nn.functional as F

from binexp.config import validate
from binexp.models.registry import build_model
from binexp.preflight import compose
from binexp.quant.bireal import BiRealConfig, BiRealConv2d
from binexp.quant.layers import quantized_layers
from binexp.quant.registry import ConvFactory, get_quantizer
from binexp.quant.sign import SurrogateParams

W = [0.5, -1.5, 1.0, -0.2]  # alpha = mean|W| = 0.8; |W| = 1 sits on the clip edge
G = [1.0, 2.0, 3.0, 4.0]


def layer(w=W, **kw) -> BiRealConv2d:
    conv = BiRealConv2d(BiRealConfig(**kw), in_channels=1, out_channels=1, kernel_size=2)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor(w).view(1, 1, 2, 2))
    return conv


def weight_grad(conv: BiRealConv2d, g=G) -> list[float]:
    q = conv.quantized_weight()
    (q * torch.tensor(g).view_as(q)).sum().backward()
    return conv.weight.grad.flatten().tolist()


# -- independent definitions (plain torch ops, not the shared surrogate registry) -------------
def _sign(w):
    return torch.where(w >= 0, 1.0, -1.0)


def _alpha(w):
    return w.abs().mean(dim=(1, 2, 3), keepdim=True)


def clipped_ste_sign(w):
    """value sign(w) (sign(0)=+1), gradient 1{|w| <= 1}."""
    return _sign(w).detach() + (w - w.detach()) * (w.abs() <= 1).to(w.dtype)


REFERENCES = {
    # paper / larq MagnitudeAwareSign: stop-gradient alpha times clipped-STE sign
    "paper": lambda w: _alpha(w).detach() * clipped_ste_sign(w),
    # official PyTorch code, literally: alpha*sign(W) detached, gradient through clamp(W, -1, 1)
    "official_pytorch": lambda w: (
        (_alpha(w) * _sign(w)).detach() - torch.clamp(w, -1, 1).detach() + torch.clamp(w, -1, 1)
    ),
    # Caffe: gradient straight through
    "caffe": lambda w: (_alpha(w) * _sign(w)).detach() + w - w.detach(),
    # autograd through alpha as well
    "exact": lambda w: _alpha(w) * clipped_ste_sign(w),
}


@pytest.mark.parametrize("variant", sorted(REFERENCES))
def test_weight_gradient_matches_autograd_of_its_definition(variant):
    torch.manual_seed(0)
    w = torch.randn(4, 3, 3, 3) * 0.9
    w[0, 0, 0, 0], w[1, 0, 0, 0] = 0.0, 0.5  # a zero weight; the edge |W| = 1 is tested below
    g = torch.randn(4, 3, 3, 3)
    conv = BiRealConv2d(BiRealConfig(weight_grad=variant), 3, 4, 3, padding=1)
    with torch.no_grad():
        conv.weight.copy_(w)
    q = conv.quantized_weight()
    (q * g).sum().backward()

    w_ref = w.clone().requires_grad_(True)
    q_ref = REFERENCES[variant](w_ref)
    (q_ref * g).sum().backward()
    # the forward is alpha*sign(W) bit for bit in every variant (the references' x - c + c
    # straight-through tricks round, so they match only to float precision)
    assert torch.equal(q.detach(), _alpha(w) * _sign(w))
    assert torch.allclose(q.detach(), q_ref.detach(), atol=1e-6)
    assert torch.allclose(conv.weight.grad, w_ref.grad, atol=1e-6), variant
    assert (w.abs() > 1).any() and (w.abs() < 1).any()  # both sides of the clip are exercised


@pytest.mark.parametrize(
    "variant,expected",
    [
        ("paper", [0.8, 0.0, 2.4, 3.2]),  # alpha * 1{|W| <= 1} * g
        ("official_pytorch", [1.0, 0.0, 3.0, 4.0]),  # 1{|W| <= 1} * g
        ("caffe", [1.0, 2.0, 3.0, 4.0]),  # g
        # alpha*F'(W)*g + sign(W)/n * sum_j g_j sign(W_j); sum g*sign(W) = -2, n = 4
        ("exact", [0.3, 0.5, 1.9, 3.7]),
    ],
)
def test_weight_gradient_at_fixed_points(variant, expected):
    conv = layer(weight_grad=variant)
    assert conv.quantized_weight().flatten().tolist() == pytest.approx([0.8, -0.8, 0.8, -0.8])
    assert weight_grad(conv) == pytest.approx(expected)


def test_reference_example_alpha_08_unit_gradient():
    # §5: alpha = 0.8, g = 1: dW = 0.8 where |W| <= 1 (|W| = 1 included: our clipped STE passes
    # the edge) and 0 where |W| = 1.5
    conv = layer()
    assert conv.alpha().item() == pytest.approx(0.8)
    assert weight_grad(conv, g=[1.0] * 4) == pytest.approx([0.8, 0.0, 0.8, 0.8])


def test_weight_surrogate_is_configurable():
    # plain STE: alpha * g everywhere, |W| = 1.5 included
    assert weight_grad(layer(weight_surrogate="ste"), g=[1.0] * 4) == pytest.approx([0.8] * 4)
    # clip 2 lets |W| = 1.5 through; official_pytorch then has no alpha factor
    conv = layer(weight_grad="official_pytorch", surrogate_params=SurrogateParams(clip=2.0))
    assert weight_grad(conv, g=[1.0] * 4) == pytest.approx([1.0] * 4)


def test_alpha_is_per_output_channel_and_sign_of_zero_is_plus_one():
    conv = BiRealConv2d(BiRealConfig(), 1, 3, 1)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([2.0, -0.5, 0.0]).view(3, 1, 1, 1))
    assert conv.quantized_weight().flatten().tolist() == [2.0, -0.5, 0.0]  # alpha of an all-zero channel is 0
    conv = layer(w=[0.0, -0.4, 0.4, 0.8])  # alpha = 0.4
    assert conv.quantized_weight().flatten().tolist() == pytest.approx([0.4, -0.4, 0.4, 0.4])  # sign(0) = +1
    x = torch.tensor([-0.3, 0.0, 0.2])
    assert conv.quantize_input(x).tolist() == [-1.0, 1.0, 1.0]  # sign(0) = +1


def test_approx_sign_gradient_through_the_activation_path():
    conv = layer()
    xs = [-1.5, -1.0, -0.5, -0.3, 0.0, 0.3, 0.5, 0.999, 1.0, 1.5]
    x = torch.tensor(xs, requires_grad=True)
    y = conv.quantize_input(x)
    assert y.tolist() == [-1.0, -1.0, -1.0, -1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
    y.sum().backward()
    assert x.grad.tolist() == pytest.approx([0.0, 0.0, 1.0, 1.4, 2.0, 1.4, 1.0, 0.002, 0.0, 0.0], abs=1e-6)


def test_approx_sign_gradient_through_the_whole_layer():
    # 1x1 conv with W = [+1]: dL/dx of sum(conv(x)) = alpha * ApproxSign'(x) = 2, 1, 0 at 0, +-0.5, +-1
    conv = BiRealConv2d(BiRealConfig(), 1, 1, 1)
    with torch.no_grad():
        conv.weight.fill_(1.0)
    x = torch.tensor([0.0, 0.5, -0.5, 1.0, -1.0]).view(1, 1, 1, 5).requires_grad_(True)
    conv(x).sum().backward()
    assert x.grad.flatten().tolist() == [2.0, 1.0, 1.0, 0.0, 0.0]


def test_act_surrogate_is_configurable():
    conv = layer(act_surrogate="clipped_ste")
    x = torch.tensor([0.0, 0.5, 1.0, 1.5], requires_grad=True)
    conv.quantize_input(x).sum().backward()
    assert x.grad.tolist() == [1.0, 1.0, 1.0, 0.0]


def test_full_forward_is_conv_of_signs():
    torch.manual_seed(0)
    conv = BiRealConv2d(BiRealConfig(), 3, 4, 3, stride=2, padding=1)
    x = torch.randn(2, 3, 6, 6)
    x[0, 0, 0, 0] = 0.0
    w = conv.weight
    expected = F.conv2d(_sign(x), _alpha(w) * _sign(w), stride=2, padding=1)
    assert torch.allclose(conv(x), expected, atol=1e-6)


def test_real_activations_option():
    conv = layer(binary_activations=False)
    x = torch.tensor([[[[0.3, -0.2], [0.1, 0.4]]]])
    assert conv(x).item() == pytest.approx(0.8 * (0.3 + 0.2 + 0.1 - 0.4))


def test_real_weights_option_is_stage_one_of_two_stage_training():
    conv = layer(binary_weights=False)
    assert torch.equal(conv.quantized_weight(), conv.weight)  # real weight, no alpha, no sign
    assert weight_grad(conv) == G  # exact gradient
    x = torch.tensor([[[[0.3, -0.2], [0.0, 0.4]]]])
    assert conv(x).item() == pytest.approx(0.5 * 1 + (-1.5) * (-1) + 1.0 * 1 + (-0.2) * 1)  # binary x, real W
    s = conv.storage()
    assert s.weight_bits == 32 * 4 and s.inference_floats == 0 and s.bits_per_weight == 32
    # the stage-1 checkpoint loads into the stage-2 (fully binary) layer key for key
    assert conv.state_dict().keys() == layer().state_dict().keys()


def test_storage_is_one_bit_per_weight_plus_alpha():
    s = BiRealConv2d(BiRealConfig(), 16, 32, 3).storage()
    assert (s.weights, s.weight_bits, s.inference_floats, s.bits_per_weight) == (4608, 4608, 32, 1.0)


@pytest.mark.parametrize(
    "kw,message",
    [
        (
            {"weight_grad": "larq"},
            "quantizer.weight_grad='larq' is not valid; choose one of: paper, official_pytorch, caffe, exact",
        ),
        ({"act_surrogate": "nope"}, "quantizer.act_surrogate='nope' is not valid"),
        ({"weight_surrogate": "nope"}, "quantizer.weight_surrogate='nope' is not valid"),
        ({"binary_weights": False, "binary_activations": False}, "use quantizer=fp"),
    ],
)
def test_bad_config_is_refused(kw, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        BiRealConfig(**kw)


def test_yaml_defaults_equal_the_schema_and_build_a_bireal_resnet20():
    run = validate(compose(["quantizer=bireal", "model=resnet20_bireal", "data=synthetic"]))
    assert isinstance(run.quantizer, BiRealConfig)
    assert asdict(run.quantizer) == asdict(BiRealConfig())
    assert get_quantizer("bireal").schema is BiRealConfig
    net = build_model(run.model, ConvFactory(run.quantizer), 10)
    layers = quantized_layers(net)
    assert len(layers) == 18 and all(isinstance(m, BiRealConv2d) for _, m in layers)
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_official_pytorch_weight_grad_is_bibench_bireal():
    # BiBench's BiRealConv2d weights = alpha_c sign(W) detached + clamp STE without alpha:
    # the same numbers as BiBench's XNOR weights (W, G of tests/unit/test_xnor.py's BiBench cases)
    conv = BiRealConv2d(BiRealConfig(weight_grad="official_pytorch"), 1, 2, 2)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([0.3, -0.6, 0.9, -1.2, -0.05, 0.15, 0.4, 0.25]).view(2, 1, 2, 2))
    q = conv.quantized_weight()
    assert q.flatten().tolist() == pytest.approx([0.75, -0.75, 0.75, -0.75, -0.2125, 0.2125, 0.2125, 0.2125])
    (q * torch.tensor([1.0, -2.0, 0.5, 1.0, 2.0, 1.0, -1.0, 0.5]).view_as(q)).sum().backward()
    assert conv.weight.grad.flatten().tolist() == [1.0, -2.0, 0.5, 0.0, 2.0, 1.0, -1.0, 0.5]
