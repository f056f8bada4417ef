"""ReActNet's RSign quantizer: exact forward and gradients on hand-made tensors, and the
official code's values (liuzechun/ReActNet, resnet/2_step2/birealnet.py) as golden numbers
(arXiv:2003.03488)."""

import torch

from binexp.quant.layers import ConvSpec
from binexp.quant.reactnet import ReActConv2d, ReActNetConfig
from tests.unit import golden_values as golden


def layer(cin=1, cout=1, k=1, **kw) -> ReActConv2d:
    return ReActConv2d(ReActNetConfig(**kw), ConvSpec(cin, cout, k)).double()


def test_rsign_forward_and_gradients_on_hand_made_tensors():
    conv = layer()
    with torch.no_grad():
        conv.threshold.fill_(0.2)
    x = torch.tensor([[[[-0.4, 0.1]]], [[[0.7, -1.3]]]], dtype=torch.float64, requires_grad=True)
    g = torch.tensor([[[[1.0, 2.0]]], [[[-1.0, 0.5]]]], dtype=torch.float64)
    xb = conv.quantize_input(x)
    assert xb.flatten().tolist() == [-1.0, 1.0, 1.0, -1.0]  # sign(x + 0.2)
    (xb * g).sum().backward()
    # ApproxSign at x + b = [-0.2, 0.3, 0.9, -1.1]: max(0, 2 - 2|.|) = [1.6, 1.4, 0.2, 0]
    assert torch.allclose(x.grad.flatten(), torch.tensor([1.6, 2.8, -0.2, 0.0], dtype=torch.float64), atol=1e-15)
    assert abs(conv.threshold.grad.item() - 4.2) < 1e-14  # 1.6 + 2.8 - 0.2 + 0


def test_weights_are_bireal_with_the_official_gradient():
    conv = layer(cin=1, cout=1, k=2)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([0.5, -1.5, 0.3, -0.2], dtype=torch.float64).view(1, 1, 2, 2))
    q = conv.quantized_weight()
    assert q.flatten().tolist() == [0.625, -0.625, 0.625, -0.625]  # mean|W| = 0.625
    (q * torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64).view_as(q)).sum().backward()
    assert conv.weight.grad.flatten().tolist() == [1.0, 0.0, 3.0, 4.0]  # g * 1{|W| <= 1}, no alpha


def test_official_code_golden_values():
    gold = golden.load("reactnet")["reactnet"]
    conv = layer(cin=3, cout=2, k=3)
    with torch.no_grad():
        conv.weight.copy_(golden.pattern((2, 3, 3, 3), 0.9, 0.2, 1.2))
        conv.threshold.copy_(golden.pattern((1, 3, 1, 1), 1.3, 0.1, 0.3))
    y, dx = golden.run(conv, golden.pattern((2, 3, 4, 4), 0.37, 0.5, 1.5), golden.pattern((2, 2, 2, 2), 0.61, 0.4))
    assert golden.close(y, gold["y"]) and golden.close(dx, gold["dx"])
    assert golden.close(conv.weight.grad, gold["dW"]) and golden.close(conv.threshold.grad, gold["db"])


def test_options_threshold_off_real_weights_and_storage():
    plain = layer(cin=3, cout=2, k=3, learnable_threshold=False)
    assert plain.threshold is None and plain.storage().inference_floats == 2
    step1 = layer(cin=3, cout=2, k=3, binary_weights=False)  # step 1: binary activations, real weights
    assert step1.threshold is not None and torch.equal(step1.quantized_weight(), step1.weight)
    assert step1.storage().weight_bits == 32 * 54
    full = layer(cin=3, cout=2, k=3)
    s = full.storage()
    assert (s.weight_bits, s.inference_floats) == (54, 2 + 3)  # 1 bit/weight, alpha (C_out) + thresholds (C_in)
    x = torch.randn(1, 3, 2, 2, dtype=torch.float64)
    with torch.no_grad():
        full.threshold.fill_(0.5)
    assert torch.equal(full.act_latent(x), x + 0.5)


def test_weight_decay_on_conv_weights_follows_the_official_rule():
    from binexp.lit.module import ClassifierModule
    from binexp.models.registry import ModelConfig
    from binexp.optimizer import ScheduleConfig, build_optimizer

    module = ClassifierModule(
        ModelConfig(name="resnet20_bireal", width=0.25),
        ReActNetConfig(),
        ScheduleConfig(optimizer="adam", lr=1e-3, weight_decay=1e-5, weight_decay_on="conv_weights"),
        num_classes=10,
    )
    opt = build_optimizer(module.schedule_cfg, module.optimizer_params())
    decayed, rest = opt.param_groups
    assert decayed["weight_decay"] == 1e-5 and rest["weight_decay"] == 0.0
    names = {id(p): n for n, p in module.named_parameters()}
    decayed_names = sorted(names[id(p)] for p in decayed["params"])
    # every conv weight (FP stem included) and the 4-D RSign thresholds; no BN, no classifier
    assert all(n.endswith((".weight", ".threshold")) and "conv" in n for n in decayed_names)
    assert "net.conv1.weight" in decayed_names and "net.layer1.0.conv1.threshold" in decayed_names
    assert not any("bn" in names[id(p)] or "linear" in names[id(p)] for p in decayed["params"])
    assert len(decayed["params"]) + len(rest["params"]) == len(list(module.parameters()))
    small = ModelConfig(name="resnet20_bireal", width=0.25)
    everything = ClassifierModule(small, ReActNetConfig(), ScheduleConfig(), 10)
    assert len(build_optimizer(everything.schedule_cfg, everything.optimizer_params()).param_groups) == 1


def test_linear_rule_shifts_each_input_feature():
    from binexp.quant.layers import LinearSpec
    from binexp.quant.reactnet import ReActLinear

    lin = ReActLinear(ReActNetConfig(), LinearSpec(2, 1, bias=False)).double()
    assert lin.threshold.shape == (2,)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[0.5, -0.3]], dtype=torch.float64))  # alpha = 0.4
        lin.threshold.copy_(torch.tensor([0.2, -0.5], dtype=torch.float64))
    x = torch.tensor([[[-0.4, 0.1], [0.7, 0.6]]], dtype=torch.float64, requires_grad=True)  # (1, 2 tokens, 2)
    y = lin(x)
    # sign(x + b): [[-1, -1], [1, 1]] -> y = 0.4 * (s0 - s1) = [0, 0]; with b = 0 token 0 would be [-1, 1]
    assert y.flatten().tolist() == [0.0, 0.0]
    y.sum().backward()
    # dL/dx = 0.4 * sign(W) * max(0, 2 - 2|x + b|): x + b = [[-0.2, -0.4], [0.9, 0.1]]
    expected = [[0.4 * 1.6, -0.4 * 1.2], [0.4 * 0.2, -0.4 * 1.8]]
    assert torch.allclose(x.grad[0], torch.tensor(expected, dtype=torch.float64), atol=1e-15)
    assert torch.allclose(lin.threshold.grad, torch.tensor([0.64 + 0.08, -0.48 - 0.72], dtype=torch.float64))
