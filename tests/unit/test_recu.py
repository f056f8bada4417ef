"""ReCU quantizer: exact weight and activation maths on hand-made tensors, the tau schedule, and
the official code's values (z-hXu/ReCU, cifar/modules/binarized_modules.py) as golden numbers
(arXiv:2103.12369)."""

import math

import pytest
import torch

from binexp.quant.layers import ConvSpec, LinearSpec
from binexp.quant.recu import ReCUConfig, ReCUConv2d, ReCULinear, recu_tau
from tests.unit import golden_values as golden

F64 = torch.float64
W = [[[[0.3, -0.6], [0.9, -1.2]]], [[[-0.05, 0.15], [0.4, 0.25]]]]  # (2, 1, 2, 2)
G = [[[[1.0, -2.0], [0.5, 1.0]]], [[[2.0, 1.0], [-1.0, 0.5]]]]


def layer(cin=1, cout=2, k=2, tau=0.85, **kw) -> ReCUConv2d:
    conv = ReCUConv2d(ReCUConfig(**kw), ConvSpec(cin, cout, k)).double()
    with torch.no_grad():
        conv.tau.fill_(tau)
    return conv


def test_weights_standardise_clamp_and_gradient():
    conv = layer()
    with torch.no_grad():
        conv.weight.copy_(torch.tensor(W, dtype=F64))
    w1 = conv.latent_weight()
    expected_w1 = [1.364569, -1.364569, 3.183993, -3.183993, -3.558527, -0.561873, 3.183945, 0.936454]
    assert torch.allclose(w1.flatten(), torch.tensor(expected_w1, dtype=F64), atol=1e-6)
    assert abs(w1.abs().mean().item() - 2.16724036) < 1e-8  # EW over the whole layer
    assert abs(conv.clamp_bound(w1).item() - 2.60929845) < 1e-8  # Q = -EW ln(2 - 2 * 0.85)
    q = conv.quantized_weight()
    assert q.flatten().tolist() == [1.0, -1.0, 1.0, -1.0, -1.0, -1.0, 1.0, 1.0]
    (q * torch.tensor(G, dtype=F64)).sum().backward()
    # |w1| > Q at positions 2, 3, 4, 6 gets no gradient at w1; the standardisation mixes it back
    expected = [3.084665, -4.600853, -0.888781, 2.404968, -5.826769, 9.331695, -5.432583, 1.927657]
    assert torch.allclose(conv.weight.grad.flatten(), torch.tensor(expected, dtype=F64), atol=1e-6)


def test_tau_one_means_no_clamp():
    conv = layer(tau=1.0)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor(W, dtype=F64))
    assert math.isinf(conv.clamp_bound(conv.latent_weight()).item())
    q = conv.quantized_weight()
    (q * torch.tensor(G, dtype=F64)).sum().backward()
    # the gradient of sign(w1) straight through the standardisation: nothing zeroed at w1
    w = torch.tensor(W, dtype=F64, requires_grad=True)
    w0 = w - w.mean(dim=(1, 2, 3), keepdim=True)
    w1 = w0 / (torch.sqrt(w0.var(dim=(1, 2, 3), keepdim=True) + 1e-5) / (2 * math.sqrt(2)))
    (w1 * torch.tensor(G, dtype=F64)).sum().backward()
    assert torch.allclose(conv.weight.grad, w.grad, atol=1e-14)


def test_activations_normalised_in_training_only():
    conv = layer(cin=1, cout=1, k=1)
    a = torch.tensor([0.5, -1.0, 2.0, 0.1], dtype=F64).view(1, 1, 2, 2).requires_grad_(True)
    expected_a0 = [0.40291, -0.80582, 1.611641, 0.080582]  # a / sqrt(var(a) + 1e-5), unbiased var
    assert torch.allclose(conv.act_latent(a).flatten(), torch.tensor(expected_a0, dtype=F64), atol=1e-6)
    conv.quantize_input(a).sum().backward()
    # ApproxSign [1.19418, 0.388359, 0, 1.838836] times 1/std, plus the autograd term of the std
    expected = [0.955446, 0.408819, -0.109567, 1.502315]
    assert torch.allclose(a.grad.flatten(), torch.tensor(expected, dtype=F64), atol=1e-6)
    conv.eval()
    assert torch.equal(conv.act_latent(a), a)
    assert torch.equal(layer(act_norm="always").eval().act_latent(a), a / torch.sqrt(a.var() + 1e-5))
    assert torch.equal(layer(act_norm="off").act_latent(a), a)


@pytest.mark.parametrize(("epoch", "tau"), [(0, 0.85), (300, 0.90285569), (599, 0.98963118)])
def test_tau_schedule_first_middle_last_epoch(epoch, tau):
    assert abs(recu_tau(epoch, 600, 0.85, 0.99) - tau) < 1e-8
    conv = layer(tau=1.0)
    conv.epoch_start(epoch, 600)
    assert abs(conv.tau.item() - tau) < 1e-8
    assert abs(recu_tau(600, 600, 0.85, 0.99) - 0.99) < 1e-15


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_official_code_golden_values(mode):
    gold = golden.load("recu")[f"recu_{mode}"]
    conv = layer(cin=3, cout=2, k=3)
    w = golden.pattern((2, 3, 3, 3), 0.9, 0.2, 1.2)
    w[0, 0, 0, 0], w[1, 2, 2, 2] = 3.0, -2.5  # two weights far out in the tails: clamped
    with torch.no_grad():
        conv.weight.copy_(w)
        conv.alpha.copy_(golden.pattern((2, 1, 1), 1.7, 0.3, 0.4).abs() + 0.1)
    conv.train(mode == "train")
    y, dx = golden.run(conv, golden.pattern((2, 3, 4, 4), 0.37, 0.5, 1.5), golden.pattern((2, 2, 2, 2), 0.61, 0.4))
    assert golden.close(y, gold["y"]) and golden.close(dx, gold["dx"])
    assert golden.close(conv.weight.grad, gold["dW"]) and golden.close(conv.alpha.grad, gold["dalpha"])


def test_official_tau_schedule_to_float32_precision():
    official = golden.load("recu")["recu_tau"]  # cpt_tau in float32 at epochs 0, 300, 599 of 600
    for epoch, value in zip((0, 300, 599), official):
        assert abs(recu_tau(epoch, 600, 0.85, 0.99) - value) < 3e-8


def test_alpha_init_and_storage():
    torch.manual_seed(0)
    conv = ReCUConv2d(ReCUConfig(), ConvSpec(3, 4, 3))
    assert conv.alpha.shape == (4, 1, 1) and conv.alpha.min() >= 0 and conv.alpha.max() < 1
    assert torch.equal(ReCUConv2d(ReCUConfig(alpha_init="ones"), ConvSpec(3, 4, 3)).alpha, torch.ones(4, 1, 1))
    s = conv.storage()
    assert (s.weight_bits, s.inference_floats) == (108, 4)
    with pytest.raises(ValueError, match="tau_min"):
        ReCUConfig(tau_min=0.99, tau_max=0.85)


def test_avgpool_pad_shortcut_of_the_official_resnet20():
    import pytest as _pytest

    from binexp.models.common import OptionAShortcut
    from binexp.models.registry import ModelConfig

    x = torch.arange(16, dtype=F64).view(1, 1, 4, 4)
    pooled = OptionAShortcut(1, 3, 2, avgpool=True)(x)
    # AvgPool2d(2) then one zero channel on each side (ReCU: planes // 4 each side)
    assert pooled.shape == (1, 3, 2, 2) and pooled[0, 1].flatten().tolist() == [2.5, 4.5, 10.5, 12.5]
    assert pooled[0, 0].abs().sum() == 0 and pooled[0, 2].abs().sum() == 0
    assert OptionAShortcut(1, 3, 2)(x)[0, 1].flatten().tolist() == [0.0, 2.0, 8.0, 10.0]  # option A subsamples
    with _pytest.raises(ValueError, match="shortcut"):
        ModelConfig(name="vgg_small", shortcut="avgpool_pad")


@pytest.mark.parametrize("point", ["0_train", "200_train", "400_train", "200_eval"])
def test_linear_rule_matches_bibench_golden(point):
    """BiBench's ReCULinear in float64 (tests/unit/official_golden.py): tau at epochs 0, 200, 400 of
    400 (BiBench's float32 tau), in training (tokens standardised) and evaluation (not)."""
    from tests.unit.official_golden import GOLDEN, IN, OUT, assert_matches, run_linear

    epoch, mode = point.split("_")
    layer = ReCULinear(ReCUConfig(), LinearSpec(IN, OUT)).double()
    layer.epoch_start(int(epoch), 400)
    golden_point = GOLDEN["recu_linear"][point]
    assert float(layer.tau) == pytest.approx(golden_point["tau"], abs=3e-8)  # BiBench computes tau in float32
    with torch.no_grad():
        layer.tau.fill_(golden_point["tau"])
        layer.alpha.copy_(torch.tensor(GOLDEN["recu_linear"]["alpha"], dtype=torch.float64))
    layer.train(mode == "train")
    assert layer.alpha.shape == (OUT,)
    assert_matches(run_linear(layer, alpha=layer.alpha), golden_point)
