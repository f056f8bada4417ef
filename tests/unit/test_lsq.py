"""LSQ (Learned Step Size Quantization, arXiv:1902.08153): forward values, the w and s gradients of
Eq. 3-4 with the 1/sqrt(N_W Q_P) gradient scale, the step-size init, on hand-made tensors."""

import math

import pytest
import torch

from binexp.quant.layers import ConvSpec, LinearSpec
from binexp.quant.lsq import LsqConfig, LsqConv2d, LsqLinear

# w / s at s = 0.5 (exact in binary): 0.75, -1.5, 2.25, -3, -0.125, 0.375, 1.0, 0.625
W = [0.375, -0.75, 1.125, -1.5, -0.0625, 0.1875, 0.5, 0.3125]  # (2, 1, 2, 2)
G = [1.0, -2.0, 0.5, 1.0, 2.0, 1.0, -1.0, 0.5]


def layer(step: float | None = 0.5, **kw) -> LsqConv2d:
    conv = LsqConv2d(LsqConfig(**kw), ConvSpec(1, 2, 2)).double()
    with torch.no_grad():
        conv.weight.copy_(torch.tensor(W).view(2, 1, 2, 2))
        if step is not None:
            conv.step.fill_(step)
    return conv


def forward_and_grads(conv) -> tuple[list[float], list[float], float]:
    q = conv.quantized_weight()
    (q * torch.tensor(G, dtype=q.dtype).view_as(q)).sum().backward()
    return q.detach().flatten().tolist(), conv.weight.grad.flatten().tolist(), conv.step.grad.item()


def test_two_bit_forward_and_gradients_by_hand():
    q, grad_w, grad_s = forward_and_grads(layer())
    # clip(w/s, -2, 1) = .75 -1.5 1 -2 -.125 .375 1 .625 -> round (half to even) 1 -2 1 -2 0 0 1 1, times s
    assert q == [0.5, -1.0, 0.5, -1.0, 0.0, 0.0, 0.5, 0.5]
    # w: straight through strictly inside (-2, 1); 2.25, -3 and the boundary 1.0 get nothing
    assert grad_w == [1.0, -2.0, 0.0, 0.0, 2.0, 1.0, 0.0, 0.5]
    # s: G * (round(r) - r inside, -Q_N below, Q_P above or on the top edge), summed, / sqrt(N_W Q_P)
    per_weight = [0.25, -0.5, 1.0, -2.0, 0.125, -0.375, 1.0, 0.375]
    raw = sum(g * d for g, d in zip(G, per_weight, strict=True))
    assert raw == -1.1875
    assert grad_s == pytest.approx(raw / math.sqrt(8 * 1), abs=1e-15)


def test_three_bit_levels_and_gradient_scales():
    q, grad_w, grad_s = forward_and_grads(layer(weight_bits=3))
    # Q_N = 4, Q_P = 3: nothing clips but -3 (= -3, inside) and 2.25 -> 2
    assert q == [0.5, -1.0, 1.0, -1.5, 0.0, 0.0, 0.5, 0.5]
    assert grad_w == G
    per_weight = [0.25, -0.5, -0.25, 0.0, 0.125, -0.375, 0.0, 0.375]
    raw = sum(g * d for g, d in zip(G, per_weight, strict=True))
    assert grad_s == pytest.approx(raw / math.sqrt(8 * 3), abs=1e-15)
    for scale, factor in (("n", 1 / math.sqrt(8)), ("none", 1.0)):
        assert forward_and_grads(layer(weight_bits=3, grad_scale=scale))[2] == pytest.approx(raw * factor, abs=1e-15)


def test_matches_the_papers_pseudocode_away_from_the_edges():
    """Appendix A's grad_scale / round_pass through clamp: the same values and gradients wherever no
    w/s sits on a clip edge."""
    torch.manual_seed(0)
    conv = LsqConv2d(LsqConfig(weight_bits=3), ConvSpec(4, 8, 3)).double()
    with torch.no_grad():
        conv.step.mul_(0.3)  # so that some weights clip
    q, grad_w, grad_s = forward_and_grads_random(conv)
    w = conv.weight.detach().clone().requires_grad_(True)
    s = conv.step.detach().clone().requires_grad_(True)
    g = 1.0 / math.sqrt(w.numel() * 3)
    s_scaled = (s - s * g).detach() + s * g
    v = (w / s_scaled).clamp(-4, 3)
    ref = ((v.round() - v).detach() + v) * s_scaled
    ref.backward(GRAD_RANDOM)
    assert torch.equal(q, ref.detach())
    clipped = (grad_w == 0).sum().item()
    assert 0 < clipped < grad_w.numel()
    torch.testing.assert_close(grad_w, w.grad, rtol=1e-15, atol=1e-15)  # (w / s) * s is 1 to rounding
    assert grad_s == pytest.approx(s.grad.item(), rel=1e-12)


GRAD_RANDOM = torch.linspace(-1, 1, 8 * 4 * 9, dtype=torch.float64).view(8, 4, 3, 3)


def forward_and_grads_random(conv):
    q = conv.quantized_weight()
    q.backward(GRAD_RANDOM)
    return q.detach(), conv.weight.grad.clone(), conv.step.grad.item()


def test_step_init_is_two_mean_abs_over_sqrt_qp_and_follows_a_reinit():
    conv = layer(step=None)
    conv.init_step()
    assert conv.step.item() == pytest.approx(2 * 0.6015625 / math.sqrt(1), abs=1e-15)  # mean|W| = 4.8125 / 8
    conv.reset_latent_weight(lambda w: w.data.fill_(-0.25))
    assert conv.step.item() == 0.5
    lin = LsqLinear(LsqConfig(weight_bits=3), LinearSpec(4, 2))
    assert lin.step.item() == pytest.approx(2 * lin.weight.abs().mean().item() / math.sqrt(3), rel=1e-6)


def test_storage_state_and_bad_bits():
    conv = layer(weight_bits=3)
    st = conv.storage()
    assert (st.weights, st.weight_bits, st.inference_floats) == (8, 24, 1)
    assert "step" in dict(conv.named_parameters()) and conv.penalty_weight() is None
    assert conv.extra_stats()["lsq_step"].item() == 0.5
    for bits in (1, 9):
        with pytest.raises(ValueError, match=f"quantizer.weight_bits={bits} is not valid; choose 2 to 8"):
            LsqConfig(weight_bits=bits)
