"""The RBNN reviewers' questions (RBNN arXiv 2009.13055, reviews and rebuttal): the numbers behind
each new diagnostic, loss term and ablation field, pinned on hand-made tensors."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from binexp.analysis.diagnostics import (
    activation_angular_bias,
    angular_bias,
    layer_stats,
    quantization_error,
    quantization_error_unscaled,
    sign_cosine,
)
from binexp.errors import BinexpError
from binexp.lit.act_diagnostics import measure_act_angular_bias
from binexp.lit.angle_penalty import angle_penalty, check_angle_penalty, one_minus_cos
from binexp.lit.distill import DistillConfig, FeatureTap, attention_map, attention_transfer_loss, block_names
from binexp.quant.rbnn import RBNNConfig, RBNNConv2d
from binexp.quant.xnor import XnorConfig, XnorConv2d


def rbnn_layer(**kw) -> RBNNConv2d:
    return RBNNConv2d(RBNNConfig(seed=0, **kw), 1, 4, 2, 1, 0)  # n = 4 weights per channel -> R1, R2 are 2 x 2


# -- activation angular bias (reviewer 1) -------------------------------------------------------
ANGLE_07 = math.degrees(math.acos(0.7))  # 45.57 degrees


def test_activation_angle_on_a_hand_made_tensor():
    a = torch.tensor([[1.0, -1.0, 1.0, -1.0], [3.0, 0.0, 0.0, 4.0]]).view(2, 1, 2, 2)
    # sample 0: cos = ||a||_1 / (||a||_2 sqrt 4) = 4 / (2 * 2) = 1 (0 degrees); sample 1: 7 / (5 * 2) = 0.7
    assert sign_cosine(a).tolist() == pytest.approx([1.0, 0.7], abs=1e-15)
    assert activation_angular_bias(a).item() == pytest.approx(ANGLE_07 / 2, abs=1e-5)
    # the weights' angular bias is the same rule over output channels: higher = further from a vertex
    assert angular_bias(a.view(2, 4)).item() == pytest.approx(ANGLE_07 / 2, abs=1e-5)
    gauss = torch.randn(64, 20000, generator=torch.Generator().manual_seed(0))
    assert angular_bias(gauss).item() == pytest.approx(math.degrees(math.acos(math.sqrt(2 / math.pi))), abs=0.1)


def test_measure_hooks_read_what_each_layer_binarizes():
    x = torch.tensor([[1.0, -1.0, 1.0, -1.0], [3.0, 0.0, 0.0, 4.0]]).view(2, 1, 2, 2)
    xnor = XnorConv2d(XnorConfig(), 1, 1, 1)
    assert measure_act_angular_bias(nn.Sequential(xnor), x) == {"0": pytest.approx(ANGLE_07 / 2, abs=1e-5)}
    # RBNN binarizes a_s = (a - mean) / std per sample: sample 0 is already centred (cos 1),
    # sample 1 centres to [1.25, -1.75, -1.75, 2.25]: 7 / (sqrt(12.75) * 2)
    rbnn = rbnn_layer()
    got = measure_act_angular_bias(nn.Sequential(rbnn), x)["0"]
    assert got == pytest.approx(math.degrees(math.acos(7 / (math.sqrt(12.75) * 2))) / 2, abs=1e-5)
    assert rbnn_layer(binary_activations=False).act_latent(x) is None  # a32: nothing binarized, no value
    assert measure_act_angular_bias(nn.Sequential(rbnn_layer(binary_activations=False)), x) == {}


# -- angle penalty (reviewer 2) -------------------------------------------------------------
def test_angle_penalty_value_and_gradient_on_a_hand_made_weight():
    w = torch.tensor([[1.0, -1.0, 1.0, -1.0], [3.0, 0.0, 0.0, 4.0]], requires_grad=True)
    p = one_minus_cos(w.view(2, 1, 2, 2))
    assert p.item() == pytest.approx(0.15, abs=1e-7)  # mean(1 - 1, 1 - 0.7)
    p.backward()
    # -(sign(w)/||w||_2 - ||w||_1 w/||w||_2^3) / (C_out sqrt n): 0 for the vertex, [-0.008, 0, 0, 0.006]
    assert torch.allclose(w.grad, torch.tensor([[0.0, 0.0, 0.0, 0.0], [-0.008, 0.0, 0.0, 0.006]]), atol=1e-8)


def test_angle_penalty_averages_layers_and_reaches_rbnn_theta():
    a, b = XnorConv2d(XnorConfig(), 1, 2, 2), XnorConv2d(XnorConfig(), 1, 1, 2)
    with torch.no_grad():
        a.weight.copy_(torch.tensor([[1.0, -1.0, 1.0, -1.0], [3.0, 0.0, 0.0, 4.0]]).view(2, 1, 2, 2))  # 0.15
        b.weight.copy_(torch.tensor([3.0, 0.0, 0.0, 4.0]).view(1, 1, 2, 2))  # 0.3
    assert angle_penalty(nn.Sequential(a, b)).item() == pytest.approx(0.225, abs=1e-7)
    layer = rbnn_layer(theta_init=1.0)
    angle_penalty(nn.Sequential(layer)).backward()
    assert layer.theta.grad.abs().sum() > 0 and layer.weight.grad.abs().sum() > 0


def test_angle_penalty_config_checks():
    assert check_angle_penalty(0.25, XnorConfig()) == 0.25
    assert check_angle_penalty(0, RBNNConfig()) == 0.0
    with pytest.raises(BinexpError, match="angle_penalty must be a number >= 0"):
        check_angle_penalty(-1.0, XnorConfig())
    from binexp.quant.flexor import FlexorConfig

    with pytest.raises(BinexpError, match="quantizer=flexor has none"):
        check_angle_penalty(0.1, FlexorConfig())


def test_bad_new_fields_are_one_line_errors(tmp_path, capsys, monkeypatch):
    from binexp.cli import main

    monkeypatch.setenv("BINEXP_VERB", "")  # cmd_train sets it; monkeypatch restores it
    base = ["train", "data=synthetic", "trainer.max_epochs=1"]
    for extra, text in [
        (["quantizer=fp", "angle_penalty=0.1"], "quantizer=fp has none"),
        (["quantizer=rbnn", "quantizer.theta_stabilize=wobble"], "theta_stabilize='wobble' is not valid"),
        (
            [
                "quantizer=rbnn",
                "quantizer.theta_stabilize=bounded",
                "quantizer.alpha_mode=fixed",
                "quantizer.alpha_value=0.5",
            ],
            "acts on the learned theta",
        ),
        (["quantizer=rbnn", "quantizer.theta_grad_max_norm=0"], "theta_grad_max_norm must be"),
        (["distill.attention_weight=1"], "needs a teacher"),
    ]:
        code = main([*base, *extra, f"hydra.run.dir={tmp_path / 'never'}"])
        err = capsys.readouterr().err
        assert code != 0 and err.count("\n") == 1 and err.startswith("binexp: error: "), err
        assert text in err, err
    assert not (tmp_path / "never").exists()


# -- quantization errors (reviewer 1: Fig. 2(b) vs Fig. 5; R2/R4: Eq. 11) --------------------
def test_scaled_and_unscaled_quantization_error_on_a_hand_made_tensor():
    w = torch.tensor([[3.0, -1.0, 1.0, -4.0]])
    # scale mean|w| = 2.25: residual [-0.75, -1.25, 1.25, 1.75] -> 6.75 / 27; unscaled [-2, 0, 0, 3] -> 13 / 27
    assert quantization_error(w).item() == pytest.approx(0.25, abs=1e-7)
    assert quantization_error_unscaled(w).item() == pytest.approx(13 / 27, abs=1e-7)
    xnor = XnorConv2d(XnorConfig(), 1, 1, 2)
    with torch.no_grad():
        xnor.weight.copy_(w.view(1, 1, 2, 2))
    stats = layer_stats(xnor)
    assert stats["quant_error"].item() == pytest.approx(0.25, abs=1e-7)
    assert stats["quant_error_unscaled"].item() == pytest.approx(13 / 27, abs=1e-7)


def test_rbnn_quant_errors_of_w_rotated_and_mixed_side_by_side():
    layer = rbnn_layer(theta_init=math.pi / 2 - 0.5)  # alpha = cos(0.5) = 0.8776 per channel
    with torch.no_grad():
        layer.weight.copy_(
            torch.tensor(
                [[3.0, -1.0, 1.0, -4.0], [1.0, 2.0, 3.0, 4.0], [0.5, -2.0, 1.0, 0.0], [2.0, 2.0, -1.0, 1.0]]
            ).view(4, 1, 2, 2)
        )
    stats = layer.extra_stats()
    w_s = layer.standardized_weight().detach()
    rot = layer.rotated(w_s)
    assert stats["quant_error_unrotated"].item() == pytest.approx(quantization_error(w_s).item(), abs=1e-7)
    assert stats["quant_error_rotated"].item() == pytest.approx(quantization_error(rot).item(), abs=1e-7)
    mixed = w_s + math.cos(0.5) * (rot - w_s)
    assert stats["quant_error_mixed"].item() == pytest.approx(quantization_error(mixed).item(), abs=1e-6)
    assert stats["quant_error_mixed"].item() == pytest.approx(layer_stats(layer)["quant_error"].item(), abs=1e-7)
    assert (
        len({round(stats[k].item(), 4) for k in ("quant_error_unrotated", "quant_error_rotated", "quant_error_mixed")})
        == 3
    )
    assert layer.final_values() == {"alpha_final": pytest.approx(math.cos(0.5), abs=1e-6)}
    assert rbnn_layer(rotation=False).final_values() == {}


# -- theta: deviation, gradient norm, clipping, bounding (reviewer 4) ----------------------------
def test_theta_deviation_gradient_norm_and_clip():
    layer = rbnn_layer(theta_stabilize="clip_grad", theta_grad_max_norm=1.0)
    with torch.no_grad():
        layer.theta.copy_((math.pi / 2 + torch.tensor([0.1, -2.0, 0.3, 0.0])).view(4, 1, 1, 1))
    layer.theta.grad = torch.tensor([3.0, 4.0, 0.0, 0.0]).view(4, 1, 1, 1)  # norm 5
    layer.before_optimizer_step()
    assert torch.allclose(layer.theta.grad.flatten(), torch.tensor([0.6, 0.8, 0.0, 0.0]), atol=1e-7)
    layer.theta.grad = torch.tensor([0.3, 0.0, 0.0, 0.4]).view(4, 1, 1, 1)  # norm 0.5 < 1: untouched
    layer.before_optimizer_step()
    assert torch.equal(layer.theta.grad.flatten(), torch.tensor([0.3, 0.0, 0.0, 0.4]))
    stats = layer.extra_stats()
    assert stats["rbnn_theta_dev_max"].item() == pytest.approx(2.0, abs=1e-6)
    assert stats["rbnn_theta_grad_norm"].item() == pytest.approx(0.5, abs=1e-7)  # the last step, before clipping
    assert stats["rbnn_theta_grad_norm_max"].item() == pytest.approx(5.0, abs=1e-6)  # the largest this epoch
    layer.epoch_start(1, 10)
    assert "rbnn_theta_grad_norm_max" not in layer.extra_stats()  # reset at each epoch start

    official = rbnn_layer()
    official.theta.grad = torch.tensor([3.0, 4.0, 0.0, 0.0]).view(4, 1, 1, 1)
    official.before_optimizer_step()
    assert torch.equal(
        official.theta.grad.flatten(), torch.tensor([3.0, 4.0, 0.0, 0.0])
    )  # default: the code's, unclipped
    assert official.extra_stats()["rbnn_theta_grad_norm"].item() == 5.0


def test_bounded_theta_is_projected_onto_zero_to_half_pi():
    layer = rbnn_layer(theta_stabilize="bounded")
    start = layer.theta.detach().clone()
    layer.step_end(0, 0)
    assert (
        torch.equal(layer.theta.detach(), start) and float(layer.alpha().detach().min()) == 1.0
    )  # theta0 = pi/2 stays: alpha0 = 1
    with torch.no_grad():
        layer.theta.copy_(torch.tensor([3.0, -1.0, 1.0, 1e5]).view(4, 1, 1, 1))
    layer.step_end(0, 1)
    assert torch.equal(layer.theta.detach().flatten(), torch.tensor([math.pi / 2, 0.0, 1.0, math.pi / 2]))
    free = rbnn_layer()
    with torch.no_grad():
        free.theta.fill_(1e5)
    free.step_end(0, 1)
    assert float(free.theta[0]) == 1e5  # theta_stabilize=none: the code's free theta


# -- attention transfer (Real-to-Binary) -----------------------------------------------------
def test_attention_transfer_loss_on_hand_made_maps():
    s1 = torch.ones(1, 2, 1, 2, requires_grad=True)  # channel mean of squares [1, 1] -> [1/sqrt2, 1/sqrt2]
    t1 = torch.tensor([[[[2.0, 0.0]]]])  # [4, 0] -> [1, 0]
    assert torch.allclose(attention_map(s1), torch.full((1, 2), 2**-0.5))
    s2, t2 = torch.tensor([[[[1.0, 2.0]]]]), torch.tensor([[[[2.0, 4.0]], [[2.0, 4.0]]]])  # equal once normalised
    loss = attention_transfer_loss([s1, s2], [t1, t2])
    assert loss.item() == pytest.approx(math.sqrt(2 - math.sqrt(2)), abs=1e-6)  # ||[1/sqrt2 - 1, 1/sqrt2]|| + 0
    loss.backward()
    assert s1.grad is not None and s1.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="matched block outputs"):
        attention_transfer_loss([s1], [])


def test_feature_tap_keeps_block_outputs_only_while_capturing():
    from binexp.models import build_model
    from binexp.models.registry import ModelConfig
    from binexp.quant import ConvFactory

    net = build_model(ModelConfig(name="resnet20"), ConvFactory(XnorConfig()), 10)
    names = block_names(net)
    assert names == [f"layer{s}.{b}" for s in (1, 2, 3) for b in range(3)]
    tap = FeatureTap(net, names)
    net(torch.randn(2, 3, 8, 8))
    assert tap.features == []
    with tap.capture() as feats:
        net(torch.randn(2, 3, 8, 8))
    assert [tuple(f.shape) for f in feats] == [(2, 16, 8, 8)] * 3 + [(2, 32, 4, 4)] * 3 + [(2, 64, 2, 2)] * 3


def test_distill_config_attention_weight():
    assert DistillConfig(teacher="x", attention_weight=2.0).attention_weight == 2.0
    with pytest.raises(ValueError, match="needs a teacher"):
        DistillConfig(attention_weight=1.0)
    with pytest.raises(ValueError, match="must be a number >= 0"):
        DistillConfig(teacher="x", attention_weight=-1.0)
