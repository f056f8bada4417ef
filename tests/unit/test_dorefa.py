"""DoReFa-Net quantizer, both readings: the authors' code (``variant=paper``, k-bit options) and
BiBench's DoReFaConv2d (``variant=bibench``), pinned to hand values and golden values
(DoReFa-Net, arXiv:1606.06160)."""

from dataclasses import asdict

import pytest
import torch

from binexp.config import validate
from binexp.preflight import compose
from binexp.quant.dorefa import DorefaConfig, DorefaConv2d
from binexp.quant.layers import ConvSpec
from tests.unit.official_golden import GOLDEN, IN, OUT, SPEC, assert_matches, run, run_linear, with_weight

W = [0.3, -0.6, 0.9, -1.2, -0.05, 0.15, 0.4, 0.25]  # (2, 1, 2, 2)
G = [1.0, -2.0, 0.5, 1.0, 2.0, 1.0, -1.0, 0.5]


def layer(**kw) -> DorefaConv2d:
    conv = DorefaConv2d(DorefaConfig(**kw), ConvSpec(1, 2, 2))
    with torch.no_grad():
        conv.weight.copy_(torch.tensor(W).view(2, 1, 2, 2))
    return conv


def weight_forward_and_grad(conv: DorefaConv2d) -> tuple[list[float], list[float]]:
    q = conv.quantized_weight()
    (q * torch.tensor(G).view_as(q)).sum().backward()
    return q.detach().flatten().tolist(), conv.weight.grad.flatten().tolist()


def act_forward_and_grad(conv: DorefaConv2d, xs: list[float]) -> tuple[list[float], list[float]]:
    x = torch.tensor(xs, requires_grad=True)
    y = conv.quantize_input(x)
    y.sum().backward()
    return y.detach().tolist(), x.grad.tolist()


def test_paper_weights_layer_wise_e_and_identity_gradient():
    q, grad = weight_forward_and_grad(layer())
    e = 0.48125  # mean|W| over the whole layer (both output channels)
    assert q == pytest.approx([e, -e, e, -e, -e, e, e, e])
    assert grad == G  # identity: |W| = 1.2 passes too


def test_paper_activations_are_zero_one_with_clip_gradient():
    y, grad = act_forward_and_grad(layer(), [-0.3, 0.0, 0.2, 0.5, 0.7, 1.0, 1.4])
    assert y == [0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0]  # round(0.5) = 0 (half to even)
    assert grad == [0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0]  # clip_by_value's gradient: edges 0 and 1 pass


def test_two_bit_weights_and_activations():
    q, _ = weight_forward_and_grad(layer(weight_bits=2))
    third = 1 / 3
    # tanh(W) / max|tanh(W)| / 2 + 1/2 = [.675, .178, .930, 0, .470, .589, .728, .647] -> round(3v) / 3
    assert q == pytest.approx([third, -third, 1.0, -1.0, -third, third, third, third])
    y, grad = act_forward_and_grad(layer(act_bits=2), [-0.3, 0.2, 0.5, 0.7, 1.4])
    assert y == pytest.approx([0.0, third, 2 * third, 2 * third, 1.0])  # 1.5 -> 2 (half to even)
    assert grad == [0.0, 1.0, 1.0, 1.0, 0.0]


def test_bibench_weights_per_channel_alpha_and_clipped_gradient_without_alpha():
    q, grad = weight_forward_and_grad(layer(variant="bibench"))
    assert q == pytest.approx([0.75, -0.75, 0.75, -0.75, -0.2125, 0.2125, 0.2125, 0.2125])
    assert grad == [1.0, -2.0, 0.5, 0.0, 2.0, 1.0, -1.0, 0.5]


def test_bibench_activations_are_sign_with_clipped_ste():
    y, grad = act_forward_and_grad(layer(variant="bibench"), [-1.5, -0.3, 0.0, 0.7, 2.0])
    assert y == [-1.0, -1.0, 1.0, 1.0, 1.0]
    assert grad == [0.0, 1.0, 1.0, 1.0, 0.0]


def test_matches_bibench_golden():
    assert_matches(run(with_weight(DorefaConv2d(DorefaConfig(variant="bibench"), SPEC))), GOLDEN["dorefa_bibench"])


@pytest.mark.parametrize("bits", [(1, 1), (2, 1), (3, 2)])
def test_matches_tensorpack_transcription_golden(bits):
    w, a = bits
    conv = with_weight(DorefaConv2d(DorefaConfig(weight_bits=w, act_bits=a), SPEC))
    assert_matches(run(conv), GOLDEN["dorefa_paper"][f"w{w}a{a}"])


def test_storage():
    spec = ConvSpec(16, 32, 3)
    paper = DorefaConv2d(DorefaConfig(), spec).storage()
    assert (paper.weight_bits, paper.inference_floats) == (4608, 1)
    assert DorefaConv2d(DorefaConfig(variant="bibench"), spec).storage().inference_floats == 32
    two = DorefaConv2d(DorefaConfig(weight_bits=2), spec).storage()
    assert (two.weight_bits, two.bits_per_weight, two.inference_floats) == (9216, 2.0, 0)


@pytest.mark.parametrize(
    "kw,message",
    [
        ({"variant": "tf"}, "quantizer.variant='tf' is not valid; choose one of: paper, bibench"),
        ({"weight_bits": 0}, "quantizer.weight_bits=0 is not valid; choose 1 to 8"),
        ({"act_bits": 9}, "quantizer.act_bits=9 is not valid"),
        ({"variant": "bibench", "weight_bits": 2}, "variant=bibench is W1/A1 only"),
    ],
)
def test_bad_config_is_refused(kw, message):
    with pytest.raises(ValueError, match=message):
        DorefaConfig(**kw)


def test_yaml_states_only_what_differs_and_composes():
    run_cfg = validate(compose(["quantizer=dorefa", "data=synthetic"]))
    assert asdict(run_cfg.quantizer) == asdict(DorefaConfig())


def test_bibench_linear_rule_keeps_alpha_in_the_weight_gradient_as_bibench():
    from binexp.quant.dorefa import DorefaLinear
    from binexp.quant.layers import LinearSpec

    layer = DorefaLinear(DorefaConfig(variant="bibench"), LinearSpec(IN, OUT))
    assert_matches(run_linear(layer), GOLDEN["dorefa_linear"])
    paper = DorefaLinear(DorefaConfig(), LinearSpec(2, 1))
    with torch.no_grad():
        paper.weight.copy_(torch.tensor([[0.5, -1.5]]))
        paper.bias.zero_()
    assert paper(torch.tensor([[0.7, 0.2]])).item() == pytest.approx(1.0)  # x_q = [1, 0], W_q = [1, -1]
