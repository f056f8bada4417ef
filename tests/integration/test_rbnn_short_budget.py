"""RBNN at a short budget on real photos (issue: the default recipe collapses late in a 20-epoch
run). What the code's schedule does to the backward pass, measured on ``data=photocrops``:
the activation surrogate's t_a = max(t, 1) leaves 1 at epoch 2E/3, and F'_a(x) = max(0, sqrt2 t_a
- t_a^2 |x|) on the standardised input multiplies the gradient of each of the 18 binarized layers
by up to sqrt2 t_a, so the gradient reaching the first layers grows by orders of magnitude per
epoch (RBNN, arXiv 2009.13055, Sec. 3.4; official code lmbxmu/RBNN, ``modules/binarized_modules.py``:
activations use k = 1 and t = max(t, 1)). The variants ``surrogate_params.act_t_max=1`` and
``surrogate_params.schedule_epochs=1000`` keep it flat.

Measured at one batch per epoch of the schedule (the epoch's (t, k) and rotation update set by the
layers' own ``epoch_start``), not over a whole training run: on 2 CPU cores a run long enough for
RBNN to learn on this set does not fit a test (see README, RBNN section)."""

from __future__ import annotations

import pytest
import torch

from binexp.models.registry import ModelConfig, build_model
from binexp.quant import quantized_layers
from binexp.quant.rbnn import RBNNConfig
from binexp.quant.registry import ConvFactory
from binexp.quant.sign import SurrogateParams

pytest.importorskip("skimage.data", reason="data=photocrops needs scikit-image (binexp[photos], in binexp[dev])")

EPOCHS = 20  # a short run of the official recipe's schedule: t = 0.01 * 1000^(e/20)


def gradients_along_the_schedule(params: SurrogateParams, epochs=(13, 15, 16, 17)) -> dict[int, tuple[float, ...]]:
    """{epoch: (t_a, ||dL/d stem||, ||dL/dtheta|| of layer1.0.conv1 and of layer3.2.conv2)} for one
    batch of 96 photo crops through a half-width ResNet-20 whose BN scales are 1 (as they are
    once training has grown them from the code's 1e-8 init)."""
    from binexp.data.photocrops import make_photocrops
    from binexp.data.registry import PHOTOS

    x, y = make_photocrops(PHOTOS, 8, 32, 0.08, 0.35, (0.0, 0.75), seed=0)
    x = (x.float() / 255 - 0.45) / 0.25
    torch.manual_seed(0)
    net = build_model(ModelConfig(width=0.5, bn_gamma_init=1.0), ConvFactory(RBNNConfig(surrogate_params=params)), 12)
    layers = dict(quantized_layers(net))
    out = {}
    for e in epochs:
        for layer in layers.values():
            layer.epoch_start(e, EPOCHS)
        net.zero_grad()
        torch.nn.functional.cross_entropy(net(x), y).backward()
        out[e] = (
            layers["layer1.0.conv1"].act_sign.t.item(),
            net.conv1.weight.grad.norm().item(),
            layers["layer1.0.conv1"].theta.grad.norm().item(),
            layers["layer3.2.conv2"].theta.grad.norm().item(),
        )
    return out


@pytest.mark.slow
def test_the_default_schedule_explodes_the_gradient_and_the_variants_do_not():
    default = gradients_along_the_schedule(SurrogateParams())
    assert [round(default[e][0], 3) for e in (13, 15, 16, 17)] == [1.0, 1.778, 2.512, 3.548]  # t_a leaves 1
    stem = {e: v[1] for e, v in default.items()}
    # measured (2-core Xeon, torch 2.14.1): 1.69 -> 104 -> 2.9e3 -> 4.8e4 at epochs 13, 15, 16, 17
    assert stem[15] > 10 * stem[13] and stem[16] > 300 * stem[13] and stem[17] > 5000 * stem[13], stem
    theta_first = {e: v[2] for e, v in default.items()}
    assert theta_first[17] > 1000 * theta_first[13], theta_first  # measured: 1.1e-8 -> 2.0e-4
    # the last binarized layer's theta gradient does not move: the growth is through depth, not the weights' k
    theta_last = [v[3] for v in default.values()]
    assert max(theta_last) < 3 * min(theta_last), theta_last

    for variant in (SurrogateParams(act_t_max=1.0), SurrogateParams(schedule_epochs=1000)):
        held = gradients_along_the_schedule(variant)
        assert all(v[0] == 1.0 for v in held.values()), (variant, held)
        stems = [v[1] for v in held.values()]
        assert max(stems) < 3 * min(stems), (variant, stems)  # flat (the batch is the same, the weights too)
        thetas = [v[2] for v in held.values()]
        assert max(thetas) < 10 * min(thetas), (variant, thetas)
