"""vit_cifar's attention binarizers (BiT's elastic binarizer, BiBench's bool attention) and the
activations of the breadth models (RPReLU, Maxout), with exact values."""

import math

import pytest
import torch

from binexp.models import ModelConfig, build_model, get_act_layer
from binexp.models.vit import ElasticBinarizer, _Heaviside
from binexp.quant import ConvFactory, get_quantizer, linear_quantizer_names


def test_rprelu_and_maxout_values():
    rp = get_act_layer("rprelu")(1)
    with torch.no_grad():
        rp.bias_in.fill_(-0.2)  # gamma = 0.2
        rp.bias_out.fill_(-0.5)  # zeta = -0.5
    x = torch.tensor([[-1.0, -0.1, 0.3, 2.0]]).T  # (4 samples, 1 channel)
    assert torch.allclose(rp(x).flatten(), torch.tensor([-0.8, -0.575, -0.4, 1.3]))
    assert torch.allclose(rp(x.view(1, 1, 2, 2)).flatten(), torch.tensor([-0.8, -0.575, -0.4, 1.3]))
    mo = get_act_layer("maxout")(1)
    assert torch.allclose(
        mo(torch.tensor([[-2.0], [-0.5], [0.3], [1.5]])).flatten(), torch.tensor([-0.5, -0.125, 0.3, 1.5])
    )
    # per channel: dim 1 of a feature map, the last dim of tokens
    rp3 = get_act_layer("rprelu")(3)
    assert rp3(torch.randn(2, 3, 4, 4)).shape == (2, 3, 4, 4) and rp3(torch.randn(2, 5, 3)).shape == (2, 5, 3)


def test_elastic_binarizer_signed_values_init_and_gradients():
    b = ElasticBinarizer(signed=True).double()
    x = torch.tensor([-0.4, 0.1, 0.5, 2.0], dtype=torch.float64, requires_grad=True)
    y = b(x)
    alpha = 2 * 0.75  # init 2 mean|x|
    assert bool(b.initialized) and b.alpha.item() == pytest.approx(alpha)
    assert torch.allclose(y, torch.tensor([-1.0, 1.0, 1.0, 1.0], dtype=torch.float64) * alpha)
    g = torch.tensor([1.0, 2.0, -1.0, 0.5], dtype=torch.float64)
    y.backward(g)
    # dL/dx passes where |x/alpha| <= 1 (2.0 / 1.5 > 1 is cut); dL/dalpha = sum(sign(x) g) / sqrt(4)
    assert torch.allclose(x.grad, torch.tensor([1.0, 2.0, -1.0, 0.0], dtype=torch.float64))
    assert b.alpha.grad.item() == pytest.approx((-1 + 2 - 1 + 0.5) / 2)
    b(x)  # a second call does not re-initialise
    assert b.alpha.item() == pytest.approx(alpha)


def test_elastic_binarizer_unsigned_probabilities():
    b = ElasticBinarizer(signed=False).double()
    p = torch.tensor([0.05, 0.1, 0.25, 0.6], dtype=torch.float64, requires_grad=True)
    y = b(p)
    alpha = 4 * 0.25  # init 4 mean|p|
    assert b.alpha.item() == pytest.approx(alpha)
    assert torch.allclose(y, torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=torch.float64))
    y.sum().backward()
    q = p.detach() / alpha
    assert torch.allclose(p.grad, torch.ones(4, dtype=torch.float64))  # all inside [0, alpha]
    assert b.alpha.grad.item() == pytest.approx(float((q.round() - q).sum()) / math.sqrt(4))


def test_bibert_attention_is_a_heaviside_with_a_clipped_straight_gradient():
    s = torch.tensor([-1.5, -0.3, 0.0, 0.7, 1.2], requires_grad=True)
    p = _Heaviside.apply(s)
    assert torch.equal(p, torch.tensor([0.0, 0.0, 1.0, 1.0, 1.0]))
    p.sum().backward()
    assert torch.equal(s.grad, torch.tensor([0.0, 1.0, 1.0, 1.0, 0.0]))


@pytest.mark.parametrize("attn", ["none", "bibert", "bit"])
@pytest.mark.parametrize("quantizer", linear_quantizer_names())
def test_vit_forward_backward_every_linear_rule_and_attention(quantizer, attn):
    torch.manual_seed(0)
    cfg = ModelConfig(name="vit_cifar", act="gelu", depth=2, dim=24, attn_binarize=attn)
    net = build_model(cfg, ConvFactory(get_quantizer(quantizer).schema()), 10)
    out = net(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 10) and torch.isfinite(out).all()
    out.logsumexp(1).sum().backward()
    grads = {n: p.grad for n, p in net.named_parameters()}
    assert all(g is not None and torch.isfinite(g).all() for g in grads.values())
    assert grads["pos_embed"].abs().sum() > 0 and grads["patch_embed.weight"].abs().sum() > 0
    # a token grid other than 8x8 resizes the position embedding
    assert net(torch.randn(1, 3, 16, 16)).shape == (1, 10)
