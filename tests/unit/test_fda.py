"""FDA: the Fourier-series surrogate in closed form against its series, the quantizer's exact
forward and gradients on hand-made tensors, its schedules, and BiBench's FDAConv2d
(htqin/BiBench, bibench/models/layers/fda.py) as golden numbers (arXiv:2103.00841)."""

import math

import pytest
import torch

from binexp.lit.module import ClassifierModule
from binexp.models.registry import ModelConfig
from binexp.optimizer import ScheduleConfig
from binexp.quant.fda import FDAConfig, FDAConv2d, FDALinear, fda_alpha
from binexp.quant.layers import ConvSpec, LinearSpec
from binexp.quant.sign import SurrogateParams, fda_terms, make_surrogate
from tests.unit import golden_values as golden

F64 = torch.float64
XS = [-1.2, -0.7, -0.3, 0.2, 0.6, 0.95, 1.3]


@pytest.mark.parametrize(
    ("epoch", "n", "expected"),
    [
        (0, 9, [0.0, 0.896956, 1.198388, 1.23964, 0.989518, 0.635095, 0.0]),
        (200, 13, [0.0, 0.842127, 1.580419, 1.690931, 1.055346, 0.310864, 0.0]),
        (399, 17, [0.0, 0.530037, 1.871853, 2.099027, 0.882655, -0.184444, 0.0]),  # negative near 1: kept
    ],
)
def test_fda_surrogate_first_middle_last_epoch(epoch, n, expected):
    s = make_surrogate("fda")
    s.set_progress(epoch, 400)
    assert s.n.item() == n == fda_terms(epoch, 400, 9)
    x = torch.tensor(XS, dtype=F64, requires_grad=True)
    assert s(x).tolist() == [-1.0, -1.0, -1.0, 1.0, 1.0, 1.0, 1.0]
    s(x).sum().backward()
    assert torch.allclose(x.grad, torch.tensor(expected, dtype=F64), atol=1e-6)
    # closed form == the series BiBench sums term by term, to float64 precision
    xs = torch.linspace(-1, 1, 2001, dtype=F64)
    series = 4 * 0.1 / math.pi * sum(torch.cos((2 * i + 1) * 0.1 * xs) for i in range(n + 1))
    assert float((s.derivative(xs) - series).abs().max()) < 1e-13


def test_fda_surrogate_at_zero_and_edges():
    s = make_surrogate("fda", params=SurrogateParams(fda_omega=0.2, fda_n0=3))
    x = torch.tensor([0.0, 1.0, -1.0, 1.0 + 1e-9], dtype=F64)
    d = s.derivative(x)
    assert d[0].item() == pytest.approx(4 * 0.2 / math.pi * 4, abs=1e-15)  # n + 1 terms of cos(0)
    assert d[1].item() > 0 and d[2].item() > 0 and d[3].item() == 0.0  # |x| = clip passes, beyond does not


def layer(cin=1, cout=2, k=2, **kw) -> FDAConv2d:
    return FDAConv2d(FDAConfig(**kw), ConvSpec(cin, cout, k)).double()


W = [[[[0.3, -0.6], [0.9, -1.2]]], [[[-0.05, 0.15], [0.4, 0.25]]]]
G = [[[[1.0, -2.0], [0.5, 1.0]]], [[[2.0, 1.0], [-1.0, 0.5]]]]


def test_forward_and_gradient_at_epoch_0_without_mlp():
    conv = layer()  # d = 4 < 64: the noise MLPs have width 0, e(W) = 0.1 sin(W)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor(W, dtype=F64))
    conv.epoch_start(0, 400)
    q = conv.quantized_weight()
    expected = [0.752216, -0.754235, 0.755875, -0.75699, -0.212606, 0.212818, 0.213328, 0.213026]
    assert torch.allclose(q.flatten(), torch.tensor(expected, dtype=F64), atol=1e-6)
    (q * torch.tensor(G, dtype=F64)).sum().backward()
    expected = [0.905956, -1.496657, 0.261001, 0.002718, 0.544472, 0.268634, -0.244635, 0.130758]
    assert torch.allclose(conv.weight.grad.flatten(), torch.tensor(expected, dtype=F64), atol=1e-6)


def test_last_epoch_is_binary_and_eval_noise_switch():
    conv = layer()
    w = torch.tensor(W, dtype=F64)
    with torch.no_grad():
        conv.weight.copy_(w)
    alpha = w.abs().mean(dim=(1, 2, 3), keepdim=True)
    conv.epoch_start(399, 400)
    assert conv.alpha_t.item() == 0.0
    assert torch.equal(conv.quantized_weight(), torch.where(w >= 0, 1.0, -1.0).double() * alpha)
    conv.epoch_start(0, 400)
    noisy = conv.quantized_weight()
    assert not torch.equal(noisy, torch.where(w >= 0, 1.0, -1.0).double() * alpha)
    assert torch.equal(conv.eval().quantized_weight(), noisy)  # BiBench: eval adds the noise term too
    binary_eval = layer(eval_noise=False).eval()
    with torch.no_grad():
        binary_eval.weight.copy_(w)
    binary_eval.epoch_start(0, 400)
    assert torch.equal(binary_eval.quantized_weight(), torch.where(w >= 0, 1.0, -1.0).double() * alpha)


@pytest.mark.parametrize(("epoch", "alpha", "n"), [(0, 0.09999846, 9), (200, 0.0496073, 13), (399, 0.0, 17)])
def test_schedules_first_middle_last_epoch(epoch, alpha, n):
    assert fda_alpha(epoch, 400, 0.1) == pytest.approx(alpha, abs=1e-8)
    conv = layer(cin=64, cout=2, k=1)
    conv.epoch_start(epoch, 400)
    assert conv.alpha_t.item() == pytest.approx(alpha, abs=1e-8)
    assert [s.n.item() for s in conv.surrogates()] == [n, n]


@pytest.mark.parametrize("epoch", [0, 200, 399])
def test_bibench_golden_values(epoch):
    gold = golden.load("fda")[f"fda_{epoch}"]
    conv = layer(cin=64, cout=2, k=1)  # d = 64: both noise MLPs have one hidden unit
    with torch.no_grad():
        conv.weight.copy_(golden.pattern((2, 64, 1, 1), 0.9, 0.2, 0.8))
        conv.weight_noise.fc1.weight.copy_(golden.pattern((1, 64), 0.13, 0.7, 0.3))
        conv.weight_noise.fc2.weight.copy_(golden.pattern((64, 1), 0.29, 0.1, 0.3))
        conv.act_noise.fc1.weight.copy_(golden.pattern((1, 64), 0.17, 0.2, 0.2))
        conv.act_noise.fc2.weight.copy_(golden.pattern((64, 1), 0.31, 0.6, 0.4))
    conv.epoch_start(epoch, 400)
    assert conv.alpha_t.item() == pytest.approx(gold["alpha"], abs=1e-15)
    y, dx = golden.run(conv, golden.pattern((2, 64, 2, 2), 0.37, 0.5, 1.2), golden.pattern((2, 2, 2, 2), 0.61, 0.4))
    assert golden.close(y, gold["y"]) and golden.close(dx, gold["dx"])
    params = dict(conv.named_parameters())
    for name in ("weight", "weight_noise.fc1.weight", "weight_noise.fc2.weight", "act_noise.fc1.weight"):
        assert golden.close(params[name].grad, gold["d" + name]), name
    assert golden.close(params["act_noise.fc2.weight"].grad, gold["dact_noise.fc2.weight"])


def test_frozen_act_noise_is_left_out_of_the_optimizer_and_storage():
    module = ClassifierModule(
        ModelConfig(name="resnet20", width=4.0), FDAConfig(act_noise="frozen"), ScheduleConfig(), num_classes=10
    )
    optimised = {id(p) for group in module.optimizer_params() for p in group["params"]}
    frozen = [p for n, p in module.named_parameters() if "act_noise" in n]
    trained = [p for n, p in module.named_parameters() if "weight_noise" in n]
    assert frozen and trained and not any(id(p) in optimised for p in frozen)
    assert all(id(p) in optimised for p in trained)
    conv = layer(cin=64, cout=2, k=1)
    assert conv.storage().training_floats == {"weight_noise": 128, "act_noise": 128}
    assert layer(cin=64, cout=2, k=1, act_noise="off").act_noise is None


@pytest.mark.parametrize("epoch", [0, 200, 399])
def test_linear_rule_matches_bibench_golden(epoch):
    """BiBench's FDALinear in float64 (tests/unit/official_golden.py), 64 features so that both noise
    MLPs have a hidden unit: output, dL/dx, dL/dW, dL/dbias and every noise-MLP weight gradient."""
    from tests.unit.official_golden import GOLDEN, assert_matches, wave

    gold = GOLDEN["fda_linear"][f"{epoch}_400"]
    lin = FDALinear(FDAConfig(), LinearSpec(64, 3)).double()
    lin.epoch_start(epoch, 400)
    assert lin.alpha_t.item() == pytest.approx(gold["alpha"], abs=1e-7)  # BiBench: float32
    with torch.no_grad():
        lin.alpha_t.fill_(gold["alpha"])
        lin.weight.copy_(wave((3, 64), 1.3, 1.7, 0.3) * 0.6)
        lin.bias.copy_(wave((3,), 0.5, 0.8, 0.1))
        for noise, (a, b) in ((lin.weight_noise, (0.3, 0.4)), (lin.act_noise, (0.35, 0.45))):
            c1, d1, c2, d2 = (1.3, 0.5, 0.7, 0.9) if noise is lin.weight_noise else (1.1, 0.2, 0.6, 0.3)
            noise.fc1.weight.copy_(wave((1, 64), a, c1, d1))
            noise.fc2.weight.copy_(wave((64, 1), b, c2, d2))
    x = (wave((2, 3, 64), 1.6, 0.9, 0.2) * 0.8).requires_grad_(True)
    y = lin(x)
    (y * wave((2, 3, 3), 1.0, 0.55, 0.7)).sum().backward()
    wn, an = lin.weight_noise, lin.act_noise
    got = {"y": y.detach(), "dx": x.grad, "dW": lin.weight.grad, "db": lin.bias.grad}
    got |= {"dw_fc1": wn.fc1.weight.grad, "dw_fc2": wn.fc2.weight.grad}
    got |= {"da_fc1": an.fc1.weight.grad, "da_fc2": an.fc2.weight.grad}
    assert_matches(got, gold)
