"""IR-Net quantizer and the EDE surrogate: Libra-PB standardisation, power-of-two scale, EDE's
per-epoch (k, t), pinned to hand values and to the official IRConv2d (IR-Net, arXiv:1909.10788)."""

from dataclasses import asdict

import pytest
import torch

from binexp.config import validate
from binexp.preflight import compose
from binexp.quant.irnet import IrnetConfig, IrnetConv2d
from binexp.quant.layers import ConvSpec
from binexp.quant.sign import SurrogateParams, make_surrogate
from tests.unit.official_golden import GOLDEN, SPEC, assert_matches, run, with_weight

XS = [-1.2, -0.7, -0.3, 0.2, 0.6, 0.95, 1.3]
W = [0.3, -0.6, 0.9, -1.2, -0.05, 0.15, 0.4, 0.25]  # (2, 1, 2, 2)
G = [1.0, -2.0, 0.5, 1.0, 2.0, 1.0, -1.0, 0.5]


@pytest.mark.parametrize(
    "t_min,epoch,epochs,t,k,derivative",
    [
        (0.1, 0, 400, 0.1, 10.0, [0.985737, 0.995116, 0.999101, 0.9996, 0.996409, 0.991029, 0.983289]),
        (0.1, 200, 400, 1.0, 1.0, [0.30502, 0.63474, 0.915137, 0.961043, 0.711578, 0.452721, 0.257433]),
        (0.1, 399, 400, 9.885531, 1.0, [0.0, 3.9e-05, 0.104428, 0.729913, 0.000279, 0.0, 0.0]),
        (1e-3, 0, 400, 0.001, 1000.0, [0.999999, 1.0, 1.0, 1.0, 1.0, 0.999999, 0.999998]),
        (1e-3, 200, 400, 0.1, 10.0, [0.985737, 0.995116, 0.999101, 0.9996, 0.996409, 0.991029, 0.983289]),
        (1e-3, 399, 400, 9.772372, 1.0, [0.0, 4.5e-05, 0.110444, 0.753654, 0.000316, 0.0, 0.0]),
    ],
)
@pytest.mark.parametrize("role", ["weight", "activation"])
def test_ede_schedule_first_middle_last_epoch(t_min, epoch, epochs, t, k, derivative, role):
    ede = make_surrogate("ede", role, SurrogateParams(t_min=t_min, t_max=10.0))
    ede.set_progress(epoch, epochs)
    assert ede.t.item() == pytest.approx(t, rel=1e-6) and ede.k.item() == pytest.approx(k, rel=1e-6)
    x = torch.tensor(XS, dtype=torch.float64, requires_grad=True)
    y = ede(x)
    assert y.tolist() == [-1.0, -1.0, -1.0, 1.0, 1.0, 1.0, 1.0]
    y.sum().backward()
    assert x.grad.tolist() == pytest.approx(derivative, abs=1e-6)


def layer(k: float, t: float, **kw) -> IrnetConv2d:
    conv = IrnetConv2d(IrnetConfig(**kw), ConvSpec(1, 2, 2)).double()
    with torch.no_grad():
        conv.weight.copy_(torch.tensor(W, dtype=torch.float64).view(2, 1, 2, 2))
        for s in conv.surrogates():
            s.k.fill_(k)
            s.t.fill_(t)
    return conv


@pytest.mark.parametrize(
    "k,t,expected",
    [
        (10.0, 0.1, [0.786898, -2.115688, 0.042413, 1.286378, -0.904097, 0.7399, -1.314927, 1.479123]),
        (1.0, 1.0, [0.766399, -1.471881, -0.12689, 0.832372, -1.717031, 2.554958, -1.730757, 0.89283]),
    ],
)
def test_libra_pb_weights_and_ede_gradient_through_the_standardisation(k, t, expected):
    conv = layer(k, t)
    ws = conv.latent_weight()
    assert ws.flatten().tolist() == pytest.approx(
        [0.482451, -0.482451, 1.125718, -1.125718, -1.258306, -0.19868, 1.125853, 0.331133], abs=1e-6
    )
    assert ws.abs().mean(dim=(1, 2, 3)).tolist() == pytest.approx([0.804084, 0.728493], abs=1e-6)
    assert conv.shift(ws).flatten().tolist() == [1.0, 1.0]
    q = conv.quantized_weight()
    assert q.flatten().tolist() == [1.0, -1.0, 1.0, -1.0, -1.0, -1.0, 1.0, 1.0]  # W = 0.15 -> w_s < 0
    (q * torch.tensor(G, dtype=torch.float64).view_as(q)).sum().backward()
    assert conv.weight.grad.flatten().tolist() == pytest.approx(expected, abs=1e-6)


def test_shift_scale_is_half_for_a_sparse_filter():
    conv = IrnetConv2d(IrnetConfig(), ConvSpec(1, 1, 3))
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[0, 0, 0, 0] = 1.0
    ws = conv.latent_weight()  # [8/3, -1/3 x 8], mean|w_s| = 0.5926, log2 = -0.755 -> round -1
    assert ws.abs().mean().item() == pytest.approx(0.592593, abs=1e-6)
    assert conv.shift(ws).item() == 0.5
    assert conv.quantized_weight().flatten().tolist() == [0.5] + [-0.5] * 8
    assert IrnetConv2d(IrnetConfig(shift_scale=False), ConvSpec(1, 1, 3)).storage().inference_floats == 0


def test_activation_is_sign_with_ede():
    conv = layer(10.0, 0.1)
    x = torch.tensor(XS, dtype=torch.float64, requires_grad=True)
    conv.quantize_input(x).sum().backward()
    assert x.grad.tolist() == pytest.approx(
        [0.985737, 0.995116, 0.999101, 0.9996, 0.996409, 0.991029, 0.983289], abs=1e-6
    )


def test_epoch_start_sets_both_surrogates():
    conv = IrnetConv2d(IrnetConfig(), ConvSpec(1, 1, 3))
    assert conv.weight_sign.t.item() == pytest.approx(0.1) and conv.act_sign.k.item() == pytest.approx(10.0)
    conv.epoch_start(150, 300)
    for s in (conv.weight_sign, conv.act_sign):
        assert s.t.item() == pytest.approx(1.0) and s.k.item() == pytest.approx(1.0)


@pytest.mark.parametrize("point", ["0.001_0_400", "0.001_200_400", "0.001_399_400", "0.1_0_300", "0.1_299_300"])
def test_matches_official_golden(point):
    golden = GOLDEN["irnet"][point]
    conv = with_weight(IrnetConv2d(IrnetConfig(), SPEC))
    for s in conv.surrogates():
        s.k.fill_(golden["k"])
        s.t.fill_(golden["t"])
    assert_matches(run(conv), golden)
    # and the schedule reaches the same (k, t) by itself (float32 buffers, as the official code)
    t_min, epoch, epochs = point.split("_")
    ours = IrnetConv2d(IrnetConfig(surrogate_params=SurrogateParams(t_min=float(t_min), t_max=10.0)), SPEC)
    ours.epoch_start(int(epoch), int(epochs))
    assert ours.weight_sign.t.item() == pytest.approx(golden["t"], rel=1e-7)
    assert ours.act_sign.k.item() == pytest.approx(golden["k"], rel=1e-7)


def test_yaml_states_only_what_differs_and_composes():
    run_cfg = validate(compose(["quantizer=irnet", "data=synthetic"]))
    assert asdict(run_cfg.quantizer) == asdict(IrnetConfig())
    assert run_cfg.quantizer.surrogate_params.t_min == 0.1


def test_linear_rule_standardises_each_row():
    from binexp.quant.irnet import IrnetLinear
    from binexp.quant.layers import LinearSpec

    layer = IrnetLinear(IrnetConfig(), LinearSpec(4, 2)).double()
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(W, dtype=torch.float64).view(2, 4))  # the rows are the conv's filters
        layer.bias.zero_()
    conv = IrnetConv2d(IrnetConfig(), ConvSpec(1, 2, 2)).double()
    with torch.no_grad():
        conv.weight.copy_(torch.tensor(W, dtype=torch.float64).view(2, 1, 2, 2))
    assert torch.equal(layer.latent_weight().flatten(), conv.latent_weight().flatten())
    assert layer.quantized_weight().flatten().tolist() == [1.0, -1.0, 1.0, -1.0, -1.0, -1.0, 1.0, 1.0]
    assert layer(torch.tensor([[0.5, -0.2, 0.3, -0.9]], dtype=torch.float64)).flatten().tolist() == [4.0, 0.0]
