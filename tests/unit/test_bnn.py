"""BNN quantizer: sign(W), sign(x), no scale, clipped STE, optional latent clipping; pinned to hand
values and to BiBench's BNNConv2d (BNN, arXiv:1602.02830)."""

from dataclasses import asdict

import pytest
import torch
import torch.nn.functional as F

from binexp.config import validate
from binexp.preflight import compose
from binexp.quant.bnn import BnnConfig, BnnConv2d
from binexp.quant.layers import ConvSpec
from tests.unit.official_golden import GOLDEN, IN, OUT, SPEC, assert_matches, run, run_linear, with_weight

# (2, 1, 2, 2): |W| = 1.2 is outside the clip, the rest inside
W = [0.3, -0.6, 0.9, -1.2, -0.05, 0.15, 0.4, 0.25]
G = [1.0, -2.0, 0.5, 1.0, 2.0, 1.0, -1.0, 0.5]


def layer(**kw) -> BnnConv2d:
    conv = BnnConv2d(BnnConfig(**kw), ConvSpec(1, 2, 2))
    with torch.no_grad():
        conv.weight.copy_(torch.tensor(W).view(2, 1, 2, 2))
    return conv


def test_weight_is_plain_sign_and_gradient_is_clipped_ste():
    conv = layer()
    q = conv.quantized_weight()
    assert q.flatten().tolist() == [1.0, -1.0, 1.0, -1.0, -1.0, 1.0, 1.0, 1.0]  # no scale
    (q * torch.tensor(G).view(2, 1, 2, 2)).sum().backward()
    assert conv.weight.grad.flatten().tolist() == [1.0, -2.0, 0.5, 0.0, 2.0, 1.0, -1.0, 0.5]


def test_activation_sign_and_gradient():
    conv = layer()
    x = torch.tensor([-1.5, -1.0, -0.2, 0.0, 0.7, 1.0, 2.0], requires_grad=True)
    y = conv.quantize_input(x)
    assert y.tolist() == [-1.0, -1.0, -1.0, 1.0, 1.0, 1.0, 1.0]  # sign(0) = +1
    y.sum().backward()
    assert x.grad.tolist() == [0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0]  # the edge |x| = 1 passes


def test_full_forward_is_conv_of_signs():
    conv = layer()
    x = torch.tensor([[[[0.5, -0.3, 0.2], [-2.0, 0.1, -0.4], [0.0, 0.6, -0.9]]]])
    xs = torch.where(x >= 0, 1.0, -1.0)
    assert torch.equal(conv(x), F.conv2d(xs, torch.tensor(W).view(2, 1, 2, 2).sign()))


@pytest.mark.parametrize("clip", [True, False])
def test_latent_clipping_after_an_sgd_step(clip):
    conv = layer(clip_latent=clip)
    opt = torch.optim.SGD(conv.parameters(), lr=1.0)
    (conv.quantized_weight() * torch.tensor(G).view(2, 1, 2, 2)).sum().backward()
    opt.step()
    conv.step_end(0, 0)
    stepped = [-0.7, 1.4, 0.4, -1.2, -2.05, -0.85, 1.4, -0.25]  # W - dL/dW
    expected = [-0.7, 1.0, 0.4, -1.0, -1.0, -0.85, 1.0, -0.25] if clip else stepped
    assert conv.weight.detach().flatten().tolist() == pytest.approx(expected, abs=1e-7)


def test_storage_is_one_bit_per_weight_and_no_scale():
    s = BnnConv2d(BnnConfig(), ConvSpec(16, 32, 3)).storage()
    assert (s.weights, s.weight_bits, s.inference_floats) == (4608, 4608, 0)


def test_matches_bibench_golden():
    assert_matches(run(with_weight(BnnConv2d(BnnConfig(), SPEC))), GOLDEN["bnn"])


@pytest.mark.parametrize(
    "kw,message",
    [({"act_surrogate": "nope"}, "quantizer.act_surrogate='nope' is not valid"), ({"clip_bound": 0.0}, "clip_bound")],
)
def test_bad_config_is_refused(kw, message):
    with pytest.raises(ValueError, match=message):
        BnnConfig(**kw)


def test_yaml_states_only_what_differs_and_composes():
    run_cfg = validate(compose(["quantizer=bnn", "data=synthetic"]))
    assert asdict(run_cfg.quantizer) == asdict(BnnConfig())


def test_linear_rule_matches_bibench_golden():
    from binexp.quant.bnn import BnnLinear
    from binexp.quant.layers import LinearSpec

    layer = BnnLinear(BnnConfig(), LinearSpec(IN, OUT))
    assert layer.storage().inference_floats == 0
    assert_matches(run_linear(layer), GOLDEN["bnn_linear"])
