"""Every surrogate: forward is exactly sign with sign(0)=+1; backward matches its formula at
fixed points (Bi-Real Net arXiv:1808.00278 Eq. 5, RBNN arXiv:2009.13055 Eq. 14, FleXOR arXiv:2009.04690 Eq. 3)."""

import math

import pytest
import torch

from binexp.quant.sign import SURROGATES, SurrogateParams, make_surrogate, rbnn_t_k, sign_pm1


def grad_at(surrogate, xs):
    x = torch.tensor(xs, dtype=torch.float64, requires_grad=True)
    surrogate(x).sum().backward()
    return x.grad


@pytest.mark.parametrize("name", sorted(SURROGATES))
@pytest.mark.parametrize("role", ["weight", "activation"])
def test_forward_is_sign_with_zero_positive(name, role):
    s = make_surrogate(name, role)
    x = torch.tensor([-2.0, -1e-8, 0.0, -0.0, 1e-8, 3.0])
    assert s(x).tolist() == [-1.0, -1.0, 1.0, 1.0, 1.0, 1.0]


# One table for every surrogate, at their default knobs and at epoch 0 of their schedules
# (tanh: t = 1; rbnn and ede weights: t = 0.01, k = 100); values from each formula by hand (math module).
XS = [-1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5]
GRAD_TABLE = {
    "ste": [1, 1, 1, 1, 1, 1, 1],
    "clipped_ste": [0, 1, 1, 1, 1, 1, 0],  # edges |x| = 1 included (larq)
    "approx_sign": [0, 0, 1, 2, 1, 0, 0],  # max(0, 2 - 2|x|): 2, 1, 0 at 0, +-0.5, +-1
    "swish_sign": [-0.03034, -0.194992, -0.084622, 5.0, -0.084622, -0.194992, -0.03034],  # b = 5
    "tanh": [0.180707, 0.419974, 0.786448, 1.0, 0.786448, 0.419974, 0.180707],  # 1 - tanh^2(x)
    "rbnn": [1.399214, 1.404214, 1.409214, 1.414214, 1.409214, 1.404214, 1.399214],  # 100(0.01 sqrt2 - 1e-4 |x|)
    "scaled_tanh": [0.0, 0.0, 0.001816, 10.0, 0.001816, 0.0, 0.0],  # 10 (1 - tanh^2(10 x))
    "ede": [0.999775, 0.9999, 0.999975, 1.0, 0.999975, 0.9999, 0.999775],  # t = 0.01, k = 100: 1 - tanh^2(x/100)
    "fda": [0.0, 0.579843, 1.071841, 1.27324, 1.071841, 0.579843, 0.0],  # 0.4/pi sum_{i<=9} cos((2i+1) x/10)
}


def test_grad_table_covers_every_surrogate():
    assert sorted(GRAD_TABLE) == sorted(SURROGATES)


@pytest.mark.parametrize("name", sorted(GRAD_TABLE))
def test_forward_and_gradient_table(name):
    s = make_surrogate(name, "weight")
    s.set_progress(0, 100)
    x = torch.tensor(XS, dtype=torch.float64, requires_grad=True)
    y = s(x)
    assert y.tolist() == [-1.0, -1.0, -1.0, 1.0, 1.0, 1.0, 1.0]
    y.sum().backward()
    assert x.grad.tolist() == pytest.approx(GRAD_TABLE[name], abs=1e-6)


@pytest.mark.parametrize("name", sorted(SURROGATES))
def test_docstring_states_forward_backward_and_paper(name):
    doc = SURROGATES[name].__doc__
    first = doc.strip().splitlines()[0]  # what `binexp list surrogate` shows
    assert "forward sign(x)" in first and "backward" in first and "20" in first, first
    assert "Forward:" in doc and "Backward:" in doc and "Paper:" in doc


def test_sign_pm1_never_zero():
    x = torch.randn(1000)
    x[::7] = 0
    assert set(sign_pm1(x).unique().tolist()) == {-1.0, 1.0}


def test_ste_and_clipped_ste():
    assert grad_at(make_surrogate("ste"), [-5.0, 0.0, 5.0]).tolist() == [1.0, 1.0, 1.0]
    # larq's convention: the edges |x| = clip pass the gradient
    g = grad_at(make_surrogate("clipped_ste"), [-1.5, -1.0, -0.3, 0.0, 1.0, 1.0001])
    assert g.tolist() == [0.0, 1.0, 1.0, 1.0, 1.0, 0.0]
    g = grad_at(make_surrogate("clipped_ste", params=SurrogateParams(clip=0.5)), [0.5, 0.6])
    assert g.tolist() == [1.0, 0.0]


def test_approx_sign_table():
    xs = [-1.5, -1.0, -0.5, -0.3, 0.0, 0.3, 0.5, 0.999, 1.0, 1.5]
    expected = [0, 0, 1.0, 1.4, 2.0, 1.4, 1.0, 0.002, 0, 0]
    assert grad_at(make_surrogate("approx_sign"), xs).tolist() == pytest.approx(expected, abs=1e-12)


def test_swish_sign_matches_derivative_of_its_function():
    beta = 5.0
    s = make_surrogate("swish_sign", params=SurrogateParams(beta=beta))
    x = torch.linspace(-2, 2, 41, dtype=torch.float64, requires_grad=True)
    f = 2 * torch.sigmoid(beta * x) * (1 + beta * x * (1 - torch.sigmoid(beta * x))) - 1
    (expected,) = torch.autograd.grad(f.sum(), x)
    assert torch.allclose(grad_at(s, x.detach().tolist()), expected, atol=1e-10)
    assert grad_at(s, [0.0]).item() == pytest.approx(beta / 2 * 2)  # peak b(2-0)/(1+1) = b


def test_scaled_tanh_table():
    s = make_surrogate("scaled_tanh", params=SurrogateParams(s_tanh=10.0))
    g = grad_at(s, [0.0, 0.05, -0.05, 0.1, 0.2, -0.3])
    assert g.tolist() == pytest.approx([10, 7.8645, 7.8645, 4.1997, 0.70651, 0.09866], abs=1e-4)
    s.s.fill_(20.0)
    assert grad_at(s, [0.1]).item() == pytest.approx(1.4130, abs=1e-4)


def test_rbnn_weight_surrogate_table():
    s = make_surrogate("rbnn", "weight")
    s.t.fill_(0.01)
    s.k.fill_(100.0)
    g = grad_at(s, [0, 0.5, 1, 1.5, 10, 100, 150])
    assert g.tolist() == pytest.approx([1.41421, 1.40921, 1.40421, 1.39921, 1.31421, 0.41421, 0.0], abs=1e-5)
    s.t.fill_(1.0)
    s.k.fill_(1.0)
    assert grad_at(s, [0, 0.5, 1, 1.5]).tolist() == pytest.approx([1.41421, 0.91421, 0.41421, 0.0], abs=1e-5)
    s.t.fill_(10.0)
    assert grad_at(s, [0, 0.1, 0.1415]).tolist() == pytest.approx([14.14214, 4.14214, 0.0], abs=1e-5)


def test_rbnn_activation_uses_k1_and_t_at_least_1():
    s = make_surrogate("rbnn", "activation")
    s.set_progress(0, 1000)  # t = 0.01 -> t_a = 1, k = 1
    assert (s.t.item(), s.k.item()) == (1.0, 1.0)
    assert grad_at(s, [0, 0.5, 1, 2]).tolist() == pytest.approx([1.41421, 0.91421, 0.41421, 0.0], abs=1e-5)
    s.t.fill_(5.0)
    assert grad_at(s, [0, 0.1, 0.2, 0.28, 0.3]).tolist() == pytest.approx(
        [7.07107, 4.57107, 2.07107, 0.07107, 0.0], abs=1e-5
    )


@pytest.mark.parametrize(
    "big_e,e,t,k",
    [
        (1000, 0, 0.01, 100),
        (1000, 250, 0.05623, 17.78),
        (1000, 500, 0.31623, 3.162),
        (1000, 666, 0.99541, 1.0046),
        (1000, 667, 1.00231, 1),
        (1000, 999, 9.931, 1),
        (150, 0, 0.01, 100),
        (150, 75, 0.31623, 3.162),
        (150, 100, 1.0, 1),
        (150, 149, 9.550, 1),
    ],
)
def test_rbnn_schedule_values(big_e, e, t, k):
    got_t, got_k = rbnn_t_k(e, big_e, 1e-2, 1e1)
    assert got_t == pytest.approx(t, rel=1e-3)
    assert got_k == pytest.approx(k, rel=1e-3)
    s = make_surrogate("rbnn", "weight")
    s.set_progress(e, big_e)
    assert s.t.item() == pytest.approx(t, rel=1e-3) and s.k.item() == pytest.approx(k, rel=1e-3)


def test_rbnn_surrogate_area_is_2k():
    s = make_surrogate("rbnn", "weight")
    s.set_progress(300, 1000)
    t, k = s.t.item(), s.k.item()
    x = torch.linspace(-2 / t, 2 / t, 400001, dtype=torch.float64)
    area = torch.trapezoid(s.derivative(x), x).item()
    assert area == pytest.approx(2 * k, rel=1e-4)


def test_annealed_tanh_schedule_and_gradient():
    s = make_surrogate("tanh", params=SurrogateParams(tanh_start=1.0, tanh_end=10.0))
    values = []
    for e in (0, 50, 100):
        s.set_progress(e, 100)
        values.append(s.t.item())
    assert values == pytest.approx([1.0, math.sqrt(10), 10.0], rel=1e-6)
    # t = 1 * 10^(e/E) by epoch e of E = 10
    by_epoch = []
    for e in (0, 1, 5, 9):
        s.set_progress(e, 10)
        by_epoch.append(s.t.item())
    assert by_epoch == pytest.approx([1.0, 1.258925, 3.162278, 7.943282], rel=1e-6)
    s.set_progress(5, 10)  # gradient at x = 0.1 with t = sqrt(10): t (1 - tanh^2(t x))
    assert grad_at(s, [0.1]).item() == pytest.approx(2.865996, rel=1e-6)
    s.set_progress(0, 100)
    assert grad_at(s, [0.0, 1.0]).tolist() == pytest.approx([1.0, 1 - math.tanh(1.0) ** 2])


def test_unknown_surrogate_is_rejected():
    with pytest.raises(ValueError, match="choose one of"):
        make_surrogate("nope")


# -- the short-budget variants of the rbnn schedule (surrogate_params.act_t_max, schedule_epochs) -----
@pytest.mark.parametrize(
    "cap,e,t_w,t_a",
    [
        (None, 0, 0.01, 1.0),  # the code: t_a = max(t, 1)
        (None, 13, 0.89125, 1.0),
        (None, 14, 1.25893, 1.25893),  # t_a leaves 1 with the weight's t (epoch 2E/3 onwards)
        (None, 19, 7.07946, 7.07946),
        (1.0, 14, 1.25893, 1.0),  # capped: F'_a stays max(0, sqrt2 - |x|)
        (1.0, 19, 7.07946, 1.0),
        (2.0, 16, 2.51189, 2.0),
        (2.0, 15, 1.77828, 1.77828),
    ],
)
def test_rbnn_act_t_max_caps_only_the_activation_t(cap, e, t_w, t_a):
    params = SurrogateParams(act_t_max=cap)
    w, a = make_surrogate("rbnn", "weight", params), make_surrogate("rbnn", "activation", params)
    w.set_progress(e, 20)
    a.set_progress(e, 20)
    assert w.t.item() == pytest.approx(t_w, rel=1e-5) and a.t.item() == pytest.approx(t_a, rel=1e-5)
    assert w.k.item() == pytest.approx(max(1 / t_w, 1.0), rel=1e-5) and a.k.item() == 1.0
    # the activation's F' at 0 is sqrt2 t_a and vanishes at |x| = sqrt2 / t_a
    g = grad_at(a, [0.0, math.sqrt(2) / t_a])
    assert g.tolist() == pytest.approx([math.sqrt(2) * t_a, 0.0], abs=1e-5)


@pytest.mark.parametrize(
    "horizon,e,big_e,t",
    [
        (None, 19, 20, 7.07946),  # the code: the run's own length
        (1000, 0, 20, 0.01),
        (1000, 10, 20, 0.0107152),  # a 20-epoch run sees the first 2 % of the 1000-epoch schedule
        (1000, 19, 20, 0.0114025),
        (1000, 667, 1000, 1.00231),  # a 1000-epoch run is unchanged
        (1000, 999, 1000, 9.931),
        (10, 15, 20, 10.0),  # past its horizon t is held at T_max
    ],
)
def test_rbnn_schedule_epochs_sets_the_horizon(horizon, e, big_e, t):
    params = SurrogateParams(schedule_epochs=horizon)
    for surrogate in ("rbnn", "ede"):
        s = make_surrogate(surrogate, "weight", params)
        s.set_progress(e, big_e)
        assert s.t.item() == pytest.approx(t, rel=1e-4)
    a = make_surrogate("rbnn", "activation", params)
    a.set_progress(e, big_e)
    assert a.t.item() == pytest.approx(max(t, 1.0), rel=1e-4)


@pytest.mark.parametrize(
    "field,value,message",
    [
        ("schedule_epochs", 0, "surrogate_params.schedule_epochs must be >= 1 or null, got 0"),
        ("act_t_max", 0.5, "surrogate_params.act_t_max must be >= 1"),
        ("act_t_max", math.nan, "surrogate_params.act_t_max must be >= 1"),
    ],
)
def test_short_budget_fields_refuse_bad_values(field, value, message):
    with pytest.raises(ValueError, match=message):
        SurrogateParams(**{field: value})
