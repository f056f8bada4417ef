"""AdaBin quantizer: exact forward and gradients on hand-made tensors, the EDE schedule it uses,
and the official code's values (huawei-noah/Efficient-Computing, BinaryNetworks/AdaBin/cifar10/
utils/binarylib.py) as golden numbers (arXiv:2208.08084)."""

import pytest
import torch

from binexp.quant.adabin import AdaBinConfig, AdaBinConv2d
from binexp.quant.layers import ConvSpec
from tests.unit import golden_values as golden

F64 = torch.float64
W = [[[[0.3, -0.6], [0.9, -1.2]]], [[[-0.05, 0.15], [0.4, 0.25]]]]  # (2, 1, 2, 2)
G = [[[[1.0, -2.0], [0.5, 1.0]]], [[[2.0, 1.0], [-1.0, 0.5]]]]


def layer(cin=1, cout=2, k=2, **kw) -> AdaBinConv2d:
    return AdaBinConv2d(AdaBinConfig(**kw), ConvSpec(cin, cout, k)).double()


@pytest.mark.parametrize(
    ("epoch", "expected"),
    [
        # t = 0.001, k = 1000 (epoch 0 of T_min 1e-3 -> T_max 10): EDE ~ identity
        (0, [1.205938, -2.205936, 0.98052, 0.519479, 1.729678, 0.957319, -0.758134, 0.571137]),
        # t = 1, k = 1 (epoch 300 of 400: 1e-3 * 1e4^(3/4) = 1)
        (300, [1.156911, -1.472107, 0.805874, 0.009322, 1.562005, 1.340296, -0.838163, 0.435862]),
    ],
)
def test_weights_centre_distance_and_gradient(epoch, expected):
    conv = layer()
    with torch.no_grad():
        conv.weight.copy_(torch.tensor(W, dtype=F64))
    conv.epoch_start(epoch, 400)
    beta, alpha = conv.weight_center_distance()
    assert torch.allclose(beta.flatten(), torch.tensor([-0.15, 0.1875], dtype=F64), atol=1e-15)
    assert torch.allclose(alpha.flatten(), torch.tensor([0.807775, 0.163459], dtype=F64), atol=1e-6)
    q = conv.quantized_weight()
    expected_q = [0.657775, -0.957775, 0.657775, -0.957775, 0.024041, 0.024041, 0.350959, 0.350959]
    assert torch.allclose(q.flatten(), torch.tensor(expected_q, dtype=F64), atol=1e-6)
    (q * torch.tensor(G, dtype=F64)).sum().backward()
    assert torch.allclose(conv.weight.grad.flatten(), torch.tensor(expected, dtype=F64), atol=1e-6)


@pytest.mark.parametrize(("epoch", "t", "k"), [(0, 1e-3, 1e3), (200, 0.1, 10.0), (399, 9.772372, 1.0)])
def test_ede_schedule_first_middle_last_epoch(epoch, t, k):
    conv = layer()
    conv.epoch_start(epoch, 400)
    assert conv.weight_sign.t.item() == pytest.approx(t, rel=1e-6)
    assert conv.weight_sign.k.item() == pytest.approx(k, rel=1e-6)


def test_activation_set_code_and_paper():
    conv = layer(cin=1, cout=1, k=1)
    with torch.no_grad():
        conv.alpha_a.fill_(1.5)
        conv.beta_a.fill_(0.2)
    x = torch.tensor([-0.4, 0.1, 0.5, 2.0], dtype=F64).view(1, 1, 2, 2).requires_grad_(True)
    out = conv.quantize_input(x)
    assert torch.allclose(out.flatten(), torch.tensor([-1.2, -1.2, 1.8, 1.8], dtype=F64), atol=1e-15)
    out.sum().backward()
    assert torch.allclose(x.grad.flatten(), torch.tensor([1.2, 1.866667, 1.6, 0.0], dtype=F64), atol=1e-6)
    assert conv.alpha_a.grad.item() == pytest.approx(1.0844444, abs=1e-6)
    assert conv.beta_a.grad.item() == pytest.approx(1.3333333, abs=1e-6)
    paper = layer(cin=1, cout=1, k=1, act_center="paper")
    with torch.no_grad():
        paper.alpha_a.fill_(1.5)
        paper.beta_a.fill_(0.2)
    assert paper.quantize_input(x).flatten().tolist() == pytest.approx([-1.3, -1.3, 1.7, 1.7], abs=1e-15)


@pytest.mark.parametrize("name", ["early", "late"])
def test_official_code_golden_values(name):
    gold = golden.load("adabin")[name]
    conv = layer(cin=3, cout=2, k=3)
    with torch.no_grad():
        conv.weight.copy_(golden.pattern((2, 3, 3, 3), 0.9, 0.2, 0.3) + 0.05)
        conv.alpha_a.fill_(1.3)
        conv.beta_a.fill_(0.2)
        conv.weight_sign.t.fill_(gold["t"])
        conv.weight_sign.k.fill_(gold["k"])
    y, dx = golden.run(conv, golden.pattern((2, 3, 4, 4), 0.37, 0.5, 1.5), golden.pattern((2, 2, 2, 2), 0.61, 0.4))
    assert golden.close(y, gold["y"]) and golden.close(dx, gold["dx"]) and golden.close(conv.weight.grad, gold["dW"])
    assert abs(conv.alpha_a.grad.item() - gold["dalpha_a"]) < 1e-12
    assert abs(conv.beta_a.grad.item() - gold["dbeta_a"]) < 1e-12


def test_storage_and_real_activations():
    s = layer(cin=3, cout=4, k=3).storage()
    assert (s.weight_bits, s.inference_floats) == (108, 2 * 4 + 2)
    real = layer(binary_activations=False)
    x = torch.randn(1, 1, 3, 3, dtype=F64)
    assert torch.equal(real.quantize_input(x), x) and real.act_latent(x) is None
