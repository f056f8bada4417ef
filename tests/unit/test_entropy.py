"""Sign-bit entropy and Huffman size (binexp/entropy.py) pinned on hand-made sign tensors."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from binexp.analysis.entropy import (
    binary_entropy,
    entropy_of_counts,
    huffman_lengths,
    huffman_size,
    kernel_counts,
    model_entropy,
    sign_statistics,
)
from binexp.quant.flexor import FlexorConfig, FlexorConv2d

ALL_PLUS = [1] * 9
ALL_MINUS = [-1] * 9


def kernels(*patterns) -> torch.Tensor:
    """(len(patterns), 1, 3, 3) signs, one 3x3 kernel per pattern."""
    return torch.tensor(patterns, dtype=torch.float32).view(len(patterns), 1, 3, 3)


def test_binary_entropy_values():
    assert binary_entropy(0.5) == 1.0
    assert binary_entropy(0.0) == 0.0 and binary_entropy(1.0) == 0.0
    assert binary_entropy(0.25) == pytest.approx(0.8112781244591328, abs=1e-15)
    assert entropy_of_counts([4, 2, 1, 1]) == pytest.approx(1.75, abs=1e-15)


def test_all_kernels_equal_cost_one_bit_per_kernel():
    s = sign_statistics(kernels(*[ALL_PLUS] * 12))
    assert s["distinct_kernels"] == 1 and s["kernels"] == 12
    assert s["sign_entropy_bits"] == 0.0 and s["kernel_entropy_bits"] == 0.0
    assert s["huffman_bits"] == 12  # a code needs >= 1 bit per symbol: exactly 1 bit per kernel
    assert s["huffman_table_bits"] == 1 * (9 + 1)  # one pattern: 9 bits + its length (1) in 1 bit


def test_two_equiprobable_patterns_cost_exactly_one_bit_per_kernel():
    s = sign_statistics(kernels(*[ALL_PLUS] * 4, *[ALL_MINUS] * 4))
    assert s["huffman_bits"] == 8 and s["kernel_entropy_bits"] == 8.0
    assert s["sign_entropy_bits"] == 72.0  # p(+1) = 1/2: one bit per sign
    assert s["plus_share"] == 0.5


def test_dyadic_distribution_huffman_meets_the_entropy():
    c = [1, -1, -1, -1, -1, -1, -1, -1, -1]
    d = [1, 1, -1, -1, -1, -1, -1, -1, -1]
    signs = kernels(*[ALL_PLUS] * 4, *[ALL_MINUS] * 2, c, d)  # pattern frequencies 4/8, 2/8, 1/8, 1/8
    s = sign_statistics(signs)
    assert s["kernel_entropy_bits"] == pytest.approx(8 * 1.75, abs=1e-12)
    assert s["huffman_bits"] == 14  # code lengths 1, 2, 3, 3
    p = (4 * 9 + 0 + 1 + 2) / 72
    assert s["sign_entropy_bits"] == pytest.approx(72 * binary_entropy(p), abs=1e-9)
    assert s["huffman_table_bits"] == 4 * (9 + 2)  # longest code 3 -> lengths stored in 2 bits
    lengths = huffman_lengths({"a": 4, "b": 2, "c": 1, "d": 1})
    assert lengths == {"a": 1, "b": 2, "c": 3, "d": 3}


def test_huffman_of_three_equal_symbols_is_five_bits():
    assert huffman_size({"a": 1, "b": 1, "c": 1}) == (5, 2)
    assert huffman_size({}) == (0, 0)


def test_blocks_are_kernels_for_3x3_and_nine_bits_otherwise():
    counts, k = kernel_counts(kernels([1, -1, 1, -1, 1, -1, 1, -1, 1]))
    assert k == 9 and counts == {0b101010101: 1}
    counts, _ = kernel_counts(torch.tensor([1.0] * 9 + [-1.0, 1.0]))  # 11 bits: one block + a 2-bit tail "01"
    assert counts == {0b111111111: 1, (2, 0b01): 1}


def test_model_entropy_totals_and_flexor_planes():
    torch.manual_seed(0)
    layer = FlexorConv2d(FlexorConfig(n_in=8, n_out=20, q=2, seed=0), 4, 6, 3)
    with torch.no_grad():
        layer.encrypted.normal_()
    net = nn.Sequential(layer)
    r = model_entropy(net)
    [lr] = r["layer_entropy"].values()
    signs = layer.weight_signs()
    assert signs.shape == (12, 4, 3, 3)
    s = sign_statistics(signs, layer.num_weights)
    n = layer.num_weights  # 216 weight positions, 2 planes: rates add the planes
    assert lr["weights"] == n and lr["kernels"] == 48
    assert r["sign_entropy_bits_per_weight"] == round(s["sign_entropy_bits"] / n, 6)
    assert r["huffman_bits_per_weight"] == round(s["huffman_bits"] / n, 6)
    assert r["stored_bits_per_weight"] == round(2 * 8 * math.ceil(216 / 20) / 216, 6)
    assert (
        r["kernel_entropy_bits_per_weight"]
        <= r["huffman_bits_per_weight"]
        <= r["kernel_entropy_bits_per_weight"] + 2 / 9
    )
    assert model_entropy(nn.Sequential(nn.Conv2d(3, 4, 3))) == {}
