"""Binarized linear layers: the factory's linear rule, each method's exact forward and gradient
on a linear weight (per-row scales, centring, per-token activation scale), and the one-line
refusal of a quantizer without a linear rule."""

from dataclasses import replace

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from binexp.cli import main as cli_main
from binexp.config import to_schema
from binexp.errors import BinexpError
from binexp.quant import (
    QUANTIZERS,
    ConvFactory,
    LinearSpec,
    QuantLayer,
    QuantLinear,
    get_quantizer,
    linear_quantizer_names,
    quantized_layers,
)
from binexp.quant.flexor import FlexorLinear

# the weight and upstream gradient of breadth tests: two rows of four
W = torch.tensor([[0.3, -0.6, 0.9, -1.2], [-0.05, 0.15, 0.4, 0.25]], dtype=torch.float64)


def qcfg(name: str, **fields):
    return to_schema(get_quantizer(name).schema, OmegaConf.create({"name": name, **fields}), "quantizer")


def layer(name: str, bias: bool = False, **fields) -> nn.Module:
    m = ConvFactory(qcfg(name, **fields)).linear(4, 2, bias=bias).double()
    with torch.no_grad():
        m.weight.copy_(W)
    return m


@pytest.mark.parametrize("name", linear_quantizer_names())
def test_linear_factory_numbers_after_convs_and_maps_tokens(name):
    factory = ConvFactory(qcfg(name))
    factory(3, 8, 3, 1, 1)
    factory(8, 8, 3, 1, 1)
    lin = factory.linear(8, 4, role="qkv", stage=2)
    assert factory.specs[-1] == LinearSpec(8, 4, True, "qkv", 2, index=2)
    # FleXOR's linear rule is its 1x1 conv applied per token (a QuantConv2d); the others are QuantLinear
    assert isinstance(lin, nn.Linear if name == "fp" else FlexorLinear if name == "flexor" else QuantLinear)
    assert name == "fp" or isinstance(lin, QuantLayer)
    out = lin(torch.randn(2, 5, 8))
    assert out.shape == (2, 5, 4) and torch.isfinite(out).all()
    out.sum().backward()
    # every parameter gets a gradient (FleXOR's latent state is its encrypted weights and alphas); all
    # are non-zero but RBNN's weight, whose gradient is exactly 0 at theta0 = pi/2 (its official init)
    grads = {n: p.grad for n, p in lin.named_parameters()}
    assert all(g is not None for g in grads.values())
    assert {n for n, g in grads.items() if g.abs().sum() == 0} == ({"weight"} if name == "rbnn" else set())
    # a binarized linear layer is listed with the convs
    if name != "fp":
        assert [n for n, _ in quantized_layers(nn.Sequential(lin))] == ["0"]


def test_a_quantizer_without_a_linear_rule_is_refused_in_one_line(monkeypatch, capsys):
    """xnor with its linear rule taken away stands for any convolution-only quantizer."""
    monkeypatch.setitem(QUANTIZERS, "xnor", replace(QUANTIZERS["xnor"], build_linear=None))
    assert "xnor" not in linear_quantizer_names()
    with pytest.raises(BinexpError) as e:
        ConvFactory(qcfg("xnor")).linear(8, 4)
    assert str(e.value).startswith("quantizer xnor has no linear rule")
    # through the CLI: one line, exit 2
    assert cli_main(["summary", "model=vit_cifar", "quantizer=xnor", "model.depth=1"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith("binexp: error: quantizer xnor has no linear rule, and this model binarizes linear layers; ")
    assert "fix: quantizer=<one of: bireal, " in err and "xnor," not in err


def test_xnor_linear_row_scales_and_paper_gradient():
    m = layer("xnor", weight_grad="detached", binary_activations=False)
    alpha = torch.tensor([[0.75], [0.2125]], dtype=torch.float64)  # mean |W| per row
    assert torch.allclose(m.quantized_weight(), alpha * W.sign())
    x = torch.tensor([[1.0, 2.0, -1.0, 0.5]], dtype=torch.float64)
    y = m(x)
    assert torch.allclose(y, x @ (alpha * W.sign()).T)
    y.sum().backward()
    # detached alpha, clipped STE: dL/dW = alpha * 1{|W| <= 1} * x (the row gradient)
    assert torch.allclose(m.weight.grad, alpha * (W.abs() <= 1) * x)


def test_xnor_linear_centring_and_token_scale():
    """BiBench XNORLinear: rows mean-centred before sign; K = mean|x| per token (act_scale=K)."""
    m = layer("xnor", center_weights=True, act_scale="K", bias=True)
    with torch.no_grad():
        m.bias.copy_(torch.tensor([0.5, -1.0]))
    wc = W - W.mean(1, keepdim=True)  # row means -0.15, 0.1875
    alpha = wc.abs().mean(1, keepdim=True)
    # centred rows [0.45, -0.45, 1.05, -1.05], [-0.2375, -0.0375, 0.2125, 0.0625]
    assert torch.allclose(alpha.flatten(), torch.tensor([0.75, 0.1375], dtype=torch.float64))
    assert torch.allclose(m.quantized_weight(), alpha * wc.sign())
    x = torch.tensor([[[0.5, -1.5, 0.2, 0.4], [1.0, 1.0, -1.0, 2.0]]], dtype=torch.float64)  # (1, 2 tokens, 4)
    k = x.abs().mean(-1, keepdim=True)  # [0.65, 1.25]
    expected = (x.sign() @ (alpha * wc.sign()).T) * k + torch.tensor([0.5, -1.0], dtype=torch.float64)
    assert torch.allclose(m(x), expected)


def test_bireal_linear_official_pytorch_gradient_and_approx_sign():
    m = layer("bireal", weight_grad="official_pytorch")
    x = torch.tensor([[0.2, -0.7, 0.4, -1.3]], dtype=torch.float64, requires_grad=True)
    y = m(x)
    alpha = W.abs().mean(1, keepdim=True)
    assert torch.allclose(y, x.detach().sign() @ (alpha * W.sign()).T)
    y.sum().backward()
    # weights: 1{|W| <= 1} * sign(x) (no alpha); inputs: ApproxSign max(0, 2 - 2|x|) * column sums of W_b
    assert torch.allclose(m.weight.grad, (W.abs() <= 1) * x.detach().sign())
    col = (alpha * W.sign()).sum(0)
    assert torch.allclose(x.grad, (2 - 2 * x.detach().abs()).clamp(min=0) * col)


def test_rbnn_linear_standardises_rows_and_tokens():
    """RBNN on a linear layer: rows standardised (unbiased), inputs standardised per token; the
    fused backward equals autograd through the standardisation followed by the surrogate."""
    from binexp.quant.rbnn import _StandardizedSign, standardize

    m = ConvFactory(qcfg("rbnn", seed=0)).linear(12, 6)
    assert (m.n1, m.n2) == (3, 4) and m.scale.shape == (6,) and m.theta.shape == (6, 1)
    w_s = m.standardized_weight()
    assert torch.allclose(w_s.mean(1), torch.zeros(6), atol=1e-6) and torch.allclose(w_s.std(1), torch.ones(6))
    torch.manual_seed(0)
    x = torch.randn(2, 3, 12, dtype=torch.float64, requires_grad=True)
    g = torch.randn(2, 3, 12, dtype=torch.float64)
    sur = m.act_sign.double()
    y = _StandardizedSign.apply(x, sur, (-1,))
    assert torch.equal(y, torch.where(x - x.mean(-1, keepdim=True) >= 0, 1.0, -1.0).double())
    (dx,) = torch.autograd.grad(y, x, g)
    x2 = x.detach().clone().requires_grad_(True)
    a = standardize(x2, (-1,))
    (a * (g * sur.derivative(a.detach()))).sum().backward()
    assert torch.allclose(dx, x2.grad)
    out = m(x.float())
    assert out.shape == (2, 3, 6)


def test_flexor_linear_decrypts_an_out_by_in_weight():
    m = ConvFactory(qcfg("flexor", seed=0)).linear(40, 20)
    w = m.quantized_weight().flatten(1)
    assert w.shape == (20, 40) and m.storage().weight_bits == 12 * 40  # ceil(800 / 20) slices of 12 bits
    x = torch.randn(3, 40)
    assert torch.allclose(m(x), x @ w.T + m.bias, atol=1e-6)
