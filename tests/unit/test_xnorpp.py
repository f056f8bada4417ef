"""XNOR-Net++ quantizer: the learned factorised output scale o (x) h (x) w, plain signs, clipped STE;
pinned to hand values and to BiBench's XNORPlusPlusConv2d (XNOR-Net++, arXiv:1909.13863)."""

from dataclasses import asdict

import pytest
import torch

from binexp.config import validate
from binexp.preflight import compose
from binexp.quant.layers import ConvSpec
from binexp.quant.xnorpp import XnorPPConfig, XnorPPConv2d
from tests.unit.official_golden import GOLDEN, IN, OUT, SPEC, H, assert_matches, run, run_linear, with_weight


def test_scale_output_values_and_factor_gradients():
    conv = XnorPPConv2d(XnorPPConfig(max_spatial=5), ConvSpec(1, 2, 1))
    with torch.no_grad():
        conv.o_scale.copy_(torch.tensor([2.0, 0.5]).view(1, 2, 1, 1))
        conv.h_scale[0, 0, :2, 0] = torch.tensor([1.0, 3.0])
        conv.w_scale[0, 0, 0, :2] = torch.tensor([0.5, 1.0])
    raw = torch.tensor([[[[1.0, -3.0], [5.0, 7.0]], [[-2.0, 4.0], [0.0, 6.0]]]])
    y = conv.scale_output(raw, raw)
    assert y.flatten().tolist() == [1.0, -6.0, 15.0, 42.0, -0.5, 2.0, 0.0, 9.0]
    y.sum().backward()
    assert conv.o_scale.grad.flatten().tolist() == [26.0, 21.0]
    assert conv.h_scale.grad.flatten().tolist() == [-3.5, 22.0, 0.0, 0.0, 0.0]  # only the used rows learn
    assert conv.w_scale.grad.flatten().tolist() == [31.0, 47.0, 0.0, 0.0, 0.0]


def test_signs_start_unscaled_and_clipped_ste():
    conv = XnorPPConv2d(XnorPPConfig(), ConvSpec(1, 1, 2))
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([0.3, -1.2, 0.0, -0.4]).view(1, 1, 2, 2))
    q = conv.quantized_weight()
    assert q.flatten().tolist() == [1.0, -1.0, 1.0, -1.0]  # no alpha; sign(0) = +1
    q.sum().backward()
    assert conv.weight.grad.flatten().tolist() == [1.0, 0.0, 1.0, 1.0]
    x = torch.tensor([[[[0.5, -2.0], [0.9, -0.1]]]], requires_grad=True)
    y = conv(x)  # all factors 1 at init: conv(sign x, sign W) = 1 + 1 + 1 + 1
    assert y.flatten().tolist() == [4.0]
    y.sum().backward()
    assert x.grad.flatten().tolist() == [1.0, 0.0, 1.0, -1.0]  # sign(W) * 1{|x| <= 1}


def test_author_library_weight_scale_is_centred_over_input_channels_mean_abs():
    conv = XnorPPConv2d(XnorPPConfig(weight_scale="mean_abs_centered", scales=["channel"]), ConvSpec(2, 1, 1))
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([0.5, -0.3]).view(1, 2, 1, 1))
    q = conv.quantized_weight()  # mean over dim 1: 0.1 -> C = [0.4, -0.4], alpha = mean|C| = 0.4
    assert q.flatten().tolist() == pytest.approx([0.4, -0.4])
    (q.flatten() * torch.tensor([1.0, 3.0])).sum().backward()
    # dL/dC = alpha * g * 1{|C| <= 1} + sign(C)/n * sum(g sign C) = [0.4, 1.2] + [0.5, -0.5] * (-2) = [-0.6, 2.2],
    # then through the centring (minus the mean over dim 1, 0.8): [-1.4, 1.4]
    assert conv.weight.grad.flatten().tolist() == pytest.approx([-1.4, 1.4])
    assert conv.h_scale is None and conv.w_scale is None


def test_matches_bibench_golden():
    g = GOLDEN["xnorpp_scales"]
    conv = with_weight(XnorPPConv2d(XnorPPConfig(), SPEC))
    with torch.no_grad():
        conv.o_scale.copy_(torch.tensor(g["o"], dtype=torch.float64).view_as(conv.o_scale))
        conv.h_scale[0, 0, :H, 0] = torch.tensor(g["h"], dtype=torch.float64)
        conv.w_scale[0, 0, 0, :H] = torch.tensor(g["w"], dtype=torch.float64)
    got = run(conv, o=conv.o_scale, h=conv.h_scale, w=conv.w_scale)
    assert got["dh"][0, 0, H:].abs().sum() == 0 and got["dw"][0, 0, 0, H:].abs().sum() == 0
    assert_matches(got, GOLDEN["xnorpp"])


def test_storage_counts_the_used_factors():
    conv = XnorPPConv2d(XnorPPConfig(), ConvSpec(4, 8, 3, 1, 1))
    conv(torch.randn(1, 4, 6, 5))
    s = conv.storage()
    assert (s.weight_bits, s.inference_floats) == (288, 8 + 6 + 5)
    assert s.training_floats == {"xnorpp_unused_spatial": 2 * 2000 - 6 - 5}


def test_output_larger_than_max_spatial_is_refused():
    conv = XnorPPConv2d(XnorPPConfig(max_spatial=4), ConvSpec(1, 1, 1))
    with pytest.raises(ValueError, match="larger than quantizer.max_spatial=4"):
        conv(torch.randn(1, 1, 5, 5))


@pytest.mark.parametrize(
    "kw,message",
    [
        ({"scales": []}, "quantizer.scales is empty"),
        ({"scales": ["depth"]}, "quantizer.scales='depth' is not valid"),
        ({"scales": ["channel", "channel"]}, "repeats a factor"),
        ({"weight_scale": "xnor"}, "quantizer.weight_scale='xnor' is not valid"),
    ],
)
def test_bad_config_is_refused(kw, message):
    with pytest.raises(ValueError, match=message):
        XnorPPConfig(**kw)


def test_yaml_states_only_what_differs_and_composes():
    run_cfg = validate(compose(["quantizer=xnorpp", "data=synthetic"]))
    assert asdict(run_cfg.quantizer) == asdict(XnorPPConfig())


def test_linear_rule_matches_bibench_golden():
    from binexp.quant.layers import LinearSpec
    from binexp.quant.xnorpp import XnorPPLinear

    layer = XnorPPLinear(XnorPPConfig(), LinearSpec(IN, OUT)).double()
    with torch.no_grad():
        layer.o_scale.copy_(torch.tensor(GOLDEN["linear_inputs"]["o"], dtype=torch.float64))
    assert_matches(run_linear(layer, o=layer.o_scale), GOLDEN["xnorpp_linear"])
    assert XnorPPLinear(XnorPPConfig(scales=["height"]), LinearSpec(IN, OUT)).o_scale is None
