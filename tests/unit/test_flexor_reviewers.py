"""FleXOR additions for the reviewers' questions: flatten=filter (no slice spans two filters,
padding counted, exact decryption and export) and the fan-in alpha rule."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from binexp.analysis.accounting import model_bits
from binexp.models import build_model
from binexp.models.registry import ModelConfig
from binexp.quant import ConvFactory, gf2
from binexp.quant.flexor import FlexorConfig, FlexorConv2d
from binexp.quant.flexor_export import pack_model, unpack


def filter_layer(q=1, n_in=8, n_out=20, c_in=5, c_out=6, k=3) -> FlexorConv2d:
    torch.manual_seed(2)
    layer = FlexorConv2d(FlexorConfig(n_in=n_in, n_out=n_out, q=q, flatten="filter", seed=4), c_in, c_out, k)
    with torch.no_grad():
        layer.encrypted.normal_()
        layer.alpha.uniform_(0.1, 1.0)
    return layer


@pytest.mark.parametrize("q", [1, 2])
def test_filter_padding_count_and_bits(q):
    layer = filter_layer(q)
    # 5*3*3 = 45 weights per filter -> 3 slices of 20 (15 padding bits each), 6 filters -> 18 slices
    assert layer.n_slices == 18 and tuple(layer.encrypted.shape) == (q, 18, 8)
    r = layer.report()
    assert r["dropped_bits"] == q * (18 * 20 - 270) == q * 90
    assert layer.storage().weight_bits == q * 8 * 18
    assert r["bits_per_weight"] == round(q * 8 * 18 / 270, 6)  # 0.533333 per plane, not 8/20
    torch_layer = FlexorConv2d(FlexorConfig(n_in=8, n_out=20, q=q, flatten="torch", seed=4), 5, 6, 3)
    assert torch_layer.n_slices == math.ceil(270 / 20) == 14


@pytest.mark.parametrize("q", [1, 2])
def test_filter_decryption_is_exact_per_filter_and_exports(q):
    layer = filter_layer(q)
    x = (layer.encrypted.detach().numpy() >= 0).astype(np.uint8)
    ref = np.zeros((q, 6, 5, 3, 3), dtype=np.uint8)
    for p in range(q):
        m = layer.xor_matrix[p].numpy()
        for o in range(6):  # filter o owns slices 3o, 3o+1, 3o+2; its first 45 bits in [C_in, kh, kw] order
            y = np.concatenate([gf2.matmul(m, x[p, 3 * o + s]) for s in range(3)])[:45]
            ref[p, o] = y.reshape(5, 3, 3)
    planes = layer.bit_planes().detach()
    assert torch.equal(planes, torch.from_numpy(ref).float() * 2 - 1)
    [ex] = unpack(pack_model(nn.Sequential(layer)))
    assert ex.flatten == "filter" and ex.n_slices == 18
    assert np.array_equal(ex.decrypted_bits(), ref)
    assert torch.equal(ex.weight(), layer.quantized_weight().detach())


def test_no_slice_spans_two_filters():
    layer = filter_layer(1)
    before = layer.bit_planes().detach()[0]
    j = int(np.flatnonzero(layer.xor_matrix[0].numpy().sum(0))[0])  # an input some gate reads
    touched = set()
    for s in range(layer.n_slices):  # flipping one encrypted sign of slice s changes filter s // 3 only
        with torch.no_grad():
            layer.encrypted[0, s, j] *= -1
        changed = (layer.bit_planes().detach()[0] != before).flatten(1).any(1).nonzero().flatten().tolist()
        assert changed in ([s // 3], []), (s, changed)
        touched.update(changed)
        with torch.no_grad():
            layer.encrypted[0, s, j] *= -1
    assert touched == set(range(6))


def test_resnet20_filter_bits_count_the_padding():
    net = build_model(
        ModelConfig(name="resnet20"), ConvFactory(FlexorConfig(n_in=16, n_out=20, flatten="filter", seed=0)), 10
    )
    bits = model_bits(net)
    # per conv: C_out * ceil(9 C_in / 20) slices of 16 bits: 6x(16x8) + 32x8 + 5x(32x15) + 64x15 + 5x(64x29) slices
    assert (
        bits["params"]["binarized_weight_bits"]
        == 16 * (6 * 16 * 8 + 32 * 8 + 5 * 32 * 15 + 64 * 15 + 5 * 64 * 29)
        == 218_624
    )
    assert bits["bits_per_weight"] == round(218_624 / 267_264, 4) == 0.818


def test_fan_in_alpha_rule():
    layer = FlexorConv2d(FlexorConfig(alpha_init_rule="fan_in", seed=0), 32, 64, 5)
    assert torch.allclose(layer.alpha, torch.full_like(layer.alpha, math.sqrt(2 / 800)))
    assert torch.all(FlexorConv2d(FlexorConfig(seed=0), 32, 64, 5).alpha == 0.2)
    with pytest.raises(ValueError, match="alpha_init_rule"):
        FlexorConfig(alpha_init_rule="kaiming")
