"""How far lossless coding could shrink a trained binary network: the empirical entropy of its
sign bits and the size a Huffman code of its kernel patterns actually reaches, per layer and in
total, as bits per weight beside the bits the method stores (1 for binary methods, q*N_in/N_out
for FleXOR). This answers FleXOR's reviewers (arXiv:2009.04690, R2 "information analysis", R3
"why not Huffman coding?"): a lossless code cannot go below these numbers, FleXOR's fixed-rate
lossy code can.

For one layer with sign bits B in {-1,+1}^(P x C_out x C_in x kh x kw) (P = bit planes: 1, or
FleXOR's q; n = C_out*C_in*kh*kw weight positions, so every rate below is "bits per weight
position" and sums the planes, as FleXOR's q*N_in/N_out does):

* sign entropy: H(p) = -p log2 p - (1-p) log2(1-p) with p the share of +1 bits; rate P*H(p);
* kernel entropy: the sign bits in PyTorch order [plane, C_out, C_in, kh, kw] are cut into blocks
  of k = 9 consecutive bits - for 3x3 convs exactly the kernels, one symbol out of 512 patterns; for
  other kernel sizes (1x1 shortcuts, LeNet-5's 5x5 and FC layers) 9 consecutive weights, so every
  layer's symbols are drawn from the same 512 patterns and stay well sampled (the last partial
  block is a symbol of its own). With empirical pattern frequencies f, H_k = -sum f log2 f bits
  per block, rate (sum over blocks of H_k) / n (<= the sign rate: a block's H <= its bits' H);
* Huffman: a Huffman code of the kernel patterns built from their counts (heapq), size = sum over
  patterns of count * code length, rate size / n. A code has >= 1 bit per symbol, so one single
  pattern still costs 1 bit per kernel; H_k <= Huffman < H_k + 1 bit per kernel. The code table
  (not in the rate, reported apart as ``huffman_table_bits``): for each distinct pattern its kh*kw
  bits and its code length in ceil(log2(max length + 1)) bits (a canonical Huffman code is rebuilt
  from the lengths alone).

These are plug-in (empirical) estimates: with few kernels against 512 patterns (ResNet-20's first
stage has 256 kernels per conv) H_k is biased low - the Huffman code of those very kernels still
reaches it, but a fresh sample of that layer would cost more. ``distinct_kernels`` / ``kernels``
shows how well a layer is sampled.

The totals code every layer with its own code: total rate = sum of the layers' bits / sum of
their weight positions.
"""

from __future__ import annotations

import heapq
import math
from collections import Counter

import numpy as np
import torch
from torch import nn


def binary_entropy(p: float) -> float:
    """H(p) in bits; 0 at p in {0, 1}."""
    if p <= 0.0 or p >= 1.0:
        return 0.0
    return -(p * math.log2(p) + (1.0 - p) * math.log2(1.0 - p))


def entropy_of_counts(counts) -> float:
    """Empirical entropy in bits per symbol of a list/array of symbol counts."""
    c = np.asarray([x for x in counts if x > 0], dtype=np.float64)
    if c.size == 0:
        return 0.0
    f = c / c.sum()
    return float(-(f * np.log2(f)).sum())


def huffman_lengths(counts: dict) -> dict:
    """Code length of every symbol of a Huffman code for ``counts`` (symbol -> count > 0), built
    with heapq; ties broken by insertion order, so the result is deterministic. A single symbol
    gets length 1."""
    items = [(c, i, [s]) for i, (s, c) in enumerate(counts.items()) if c > 0]
    if not items:
        return {}
    if len(items) == 1:
        return {items[0][2][0]: 1}
    lengths = {s: 0 for _, _, (s,) in items}
    heapq.heapify(items)
    tie = len(items)
    while len(items) > 1:
        c1, _, s1 = heapq.heappop(items)
        c2, _, s2 = heapq.heappop(items)
        for s in s1 + s2:
            lengths[s] += 1
        heapq.heappush(items, (c1 + c2, tie, s1 + s2))
        tie += 1
    return lengths


def huffman_size(counts: dict) -> tuple[int, int]:
    """(bits of the coded stream = sum count * code length, the longest code length) of a
    Huffman code for ``counts``; the code table's size is :func:`huffman_table_bits`."""
    lengths = huffman_lengths(counts)
    return sum(counts[s] * n for s, n in lengths.items()), max(lengths.values(), default=0)


def huffman_table_bits(distinct: int, symbol_bits: int, max_length: int) -> int:
    """Bits to store a canonical Huffman code: per distinct symbol its bits and its length."""
    if distinct == 0:
        return 0
    return distinct * (symbol_bits + max(1, math.ceil(math.log2(max_length + 1))))


BLOCK = 9  # bits per symbol: one 3x3 kernel


def kernel_counts(signs: torch.Tensor, block: int = BLOCK) -> tuple[Counter, int]:
    """Counts of the ``block``-bit patterns of a sign tensor flattened in its (row-major) order
    (+1 -> bit 1, the first bit the most significant): pattern -> count, with the last partial
    block (if any) keyed ``(length, pattern)``; returns (counts, block)."""
    bits = (signs.detach().reshape(-1) > 0).cpu().numpy().astype(np.int64)
    full = len(bits) // block
    weights = 1 << np.arange(block - 1, -1, -1, dtype=np.int64)
    codes = bits[: full * block].reshape(full, block) @ weights
    values, counts = np.unique(codes, return_counts=True)
    out = Counter(dict(zip(values.tolist(), counts.tolist())))
    rest = bits[full * block :]
    if len(rest):
        out[(len(rest), int(rest @ weights[block - len(rest) :]))] += 1
    return out, block


def sign_statistics(signs: torch.Tensor, weights: int | None = None) -> dict:
    """Entropies and Huffman size of one layer's sign bits (shape (..., kh, kw), values +-1).
    ``weights``: the weight positions the rates are divided by (default: the number of signs,
    i.e. one plane); FleXOR passes C_out*C_in*kh*kw so q planes add up."""
    n_bits = signs.numel()
    n = int(weights or n_bits)
    p = float((signs > 0).sum()) / n_bits if n_bits else 0.0
    counts, k = kernel_counts(signs)
    kernels = sum(counts.values())
    h_kernel = entropy_of_counts(counts.values())
    stream, max_len = huffman_size(counts)
    table = huffman_table_bits(len(counts), k, max_len)
    return {
        "weights": n,
        "sign_bits": n_bits,
        "block_bits": k,
        "kernels": kernels,
        "distinct_kernels": len(counts),
        "plus_share": round(p, 6),
        "sign_entropy_bits": n_bits * binary_entropy(p),
        "kernel_entropy_bits": kernels * h_kernel,
        "huffman_bits": stream,
        "huffman_table_bits": table,
    }


def _rates(s: dict) -> dict:
    n = max(s["weights"], 1)
    return {
        "sign_entropy_bits_per_weight": round(s["sign_entropy_bits"] / n, 6),
        "kernel_entropy_bits_per_weight": round(s["kernel_entropy_bits"] / n, 6),
        "huffman_bits_per_weight": round(s["huffman_bits"] / n, 6),
        "huffman_table_bits": int(s["huffman_table_bits"]),
        "huffman_bits_per_weight_with_table": round((s["huffman_bits"] + s["huffman_table_bits"]) / n, 6),
        "stored_bits_per_weight": round(s["stored_bits"] / n, 6),
    }


@torch.no_grad()
def layer_entropy(layer) -> dict:
    """The numbers of one binarized layer (a :class:`~binexp.quant.layers.QuantConv2d`): its
    decrypted/used sign bits (``weight_signs()``, all planes), its rates and the bits it stores."""
    signs = layer.weight_signs().detach()
    s = sign_statistics(signs, layer.num_weights)
    s["stored_bits"] = layer.storage().weight_bits
    out = {
        "weights": s["weights"],
        "kernels": s["kernels"],
        "distinct_kernels": s["distinct_kernels"],
        "plus_share": s["plus_share"],
    }
    out.update(_rates(s))
    out["_sums"] = s
    return out


@torch.no_grad()
def model_entropy(model: nn.Module) -> dict:
    """``metrics.json`` fields: model totals (every layer coded with its own code) and
    ``layer_entropy`` per binarized layer; empty for a model without binarized layers."""
    from binexp.quant.layers import quantized_layers

    layers = quantized_layers(model)
    if not layers:
        return {}
    per_layer = {}
    tot = {
        k: 0
        for k in (
            "weights",
            "sign_entropy_bits",
            "kernel_entropy_bits",
            "huffman_bits",
            "huffman_table_bits",
            "stored_bits",
        )
    }
    for name, layer in layers:
        r = layer_entropy(layer)
        sums = r.pop("_sums")
        for k in tot:
            tot[k] += sums[k]
        per_layer[name.removeprefix("net.")] = r
    out = _rates(tot)
    out["layer_entropy"] = per_layer
    return out


def format_entropy(report: dict) -> str:
    """The ``binexp summary`` section: one row per layer and a total, in bits per weight."""
    if not report:
        return ""
    head = ["layer", "patterns", "+1 share", "stored", "H(sign)", "H(kernel)/9", "Huffman", "+table", "table bits"]
    rows = [head]
    for name, r in report["layer_entropy"].items():
        rows.append(
            [
                name,
                f"{r['distinct_kernels']}/{r['kernels']}",
                f"{r['plus_share']:.4f}",
                f"{r['stored_bits_per_weight']:.4f}",
                f"{r['sign_entropy_bits_per_weight']:.4f}",
                f"{r['kernel_entropy_bits_per_weight']:.4f}",
                f"{r['huffman_bits_per_weight']:.4f}",
                f"{r['huffman_bits_per_weight_with_table']:.4f}",
                f"{r['huffman_table_bits']:,}",
            ]
        )
    rows.append(
        [
            "total",
            "",
            "",
            f"{report['stored_bits_per_weight']:.4f}",
            f"{report['sign_entropy_bits_per_weight']:.4f}",
            f"{report['kernel_entropy_bits_per_weight']:.4f}",
            f"{report['huffman_bits_per_weight']:.4f}",
            f"{report['huffman_bits_per_weight_with_table']:.4f}",
            f"{report['huffman_table_bits']:,}",
        ]
    )
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = [
        (
            "Sign-bit information, bits per weight ('stored': what the method keeps; lossless coding of 3x3 kernels "
            "(9-bit blocks) cannot go below H(kernel)/9; a Huffman code of them reaches 'Huffman', with its code "
            "table '+table'; 'patterns': distinct/all kernels):"
        )
    ]
    for i, row in enumerate(rows):
        lines.append("  ".join(c.ljust(w) if j == 0 else c.rjust(w) for j, (c, w) in enumerate(zip(row, widths))))
        if i == 0 or i == len(rows) - 2:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


__all__ = [
    "binary_entropy",
    "entropy_of_counts",
    "format_entropy",
    "huffman_lengths",
    "huffman_size",
    "huffman_table_bits",
    "kernel_counts",
    "layer_entropy",
    "model_entropy",
    "sign_statistics",
]
