"""FleXOR inference export: the bits a FleXOR model really stores, packed into one file, and
the weights rebuilt from it with integer XOR (GF(2) matrix products), independent of the
training code path. No registration here (this module only defines functions).

File layout (little-endian), ``.flexor``:

* header: magic ``FLXR``, version u8, number of distinct XOR matrices u16, number of layers u16;
* each distinct matrix M (shared by all layers/planes that use it): N_out u16, N_in u16, then
  the N_out*N_in bits row-major, ``np.packbits``;
* each FleXOR layer, in ``quantized_layers`` order: C_out u16, C_in u16, kh u8, kw u8, q u8,
  flatten u8 (0 = tf, 1 = torch, 2 = filter: each output filter chunked on its own,
  padded to a multiple of N_out), N_in u16, N_out u16, alpha count per plane u16, one matrix
  id u16 per plane; alpha as float32 (q x count); the encrypted sign bits of all planes,
  (q, n_slices, N_in) row-major, ``np.packbits`` (1 = x^e >= 0).

So the file is the encrypted bits + the alphas + a per-layer header of 16 + 2q bytes and the
shared matrices: its size is within a few percent of bits_per_weight * n / 8 + 4 * alphas.

Rebuilding: bits y = (x M^T) mod 2 per slice (integer arithmetic), B = 2y - 1, the first n
bits reshaped in the layer's order, W = sum_i alpha_i B_i - exactly the training forward.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from binexp.quant import gf2

if TYPE_CHECKING:
    from binexp.quant.flexor import FlexorConv2d

MAGIC = b"FLXR"
VERSION = 1
ORDERS = ("tf", "torch", "filter")


@dataclass
class ExportedLayer:
    """One layer as read back from a ``.flexor`` file."""

    shape: tuple[int, int, int, int]  # C_out, C_in, kh, kw
    q: int
    flatten: str
    n_in: int
    n_out: int
    alpha: np.ndarray  # (q, C_out or 1) float32
    matrices: list[np.ndarray]  # q x (N_out, N_in) uint8
    encrypted_bits: np.ndarray  # (q, n_slices, N_in) uint8

    @property
    def n_slices(self) -> int:
        return self.encrypted_bits.shape[1]

    def decrypted_bits(self) -> np.ndarray:
        """(q, C_out, C_in, kh, kw) 0/1 from integer XOR decryption (M x mod 2 per slice)."""
        c_out, c_in, kh, kw = self.shape
        n = c_out * c_in * kh * kw
        planes = []
        for p in range(self.q):
            y = gf2.matmul(self.matrices[p], self.encrypted_bits[p]).reshape(-1)  # n_slices*N_out bits
            if self.flatten == "filter":  # C_out padded filters; the first C_in*kh*kw bits of each
                planes.append(y.reshape(c_out, -1)[:, : c_in * kh * kw].reshape(c_out, c_in, kh, kw))
                continue
            y = y[:n]
            if self.flatten == "torch":
                planes.append(y.reshape(c_out, c_in, kh, kw))
            else:
                planes.append(y.reshape(kh, kw, c_in, c_out).transpose(3, 2, 0, 1))
        return np.stack(planes)

    def weight(self) -> torch.Tensor:
        """W = sum_i alpha_i (.) (2 y_i - 1), float32, in the training forward's arithmetic."""
        b = torch.from_numpy(self.decrypted_bits().astype(np.float32) * 2.0 - 1.0)
        alpha = torch.from_numpy(self.alpha).view(self.q, -1, 1, 1, 1)
        return (alpha * b).sum(0)


def flexor_layers(model: nn.Module) -> list[tuple[str, FlexorConv2d]]:
    from binexp.quant.flexor import FlexorConv2d
    from binexp.quant.layers import quantized_layers

    return [(name, m) for name, m in quantized_layers(model) if isinstance(m, FlexorConv2d)]


def pack_model(model: nn.Module) -> bytes:
    """The ``.flexor`` bytes of every FleXOR layer of ``model``."""
    layers = flexor_layers(model)
    matrix_ids: dict[bytes, int] = {}
    matrices: list[np.ndarray] = []
    body = bytearray()
    for _, layer in layers:
        mats = layer.xor_matrix.detach().cpu().numpy().astype(np.uint8)
        ids = []
        for m in mats:
            key = m.shape[0].to_bytes(2, "little") + m.shape[1].to_bytes(2, "little") + m.tobytes()
            if key not in matrix_ids:
                matrix_ids[key] = len(matrices)
                matrices.append(m)
            ids.append(matrix_ids[key])
        c_out, c_in, kh, kw = layer.weight_shape
        alpha = layer.alpha.detach().cpu().to(torch.float32).numpy()
        body += struct.pack(
            "<HHBBBBHHH",
            c_out,
            c_in,
            kh,
            kw,
            layer.q,
            ORDERS.index(layer.flatten_order),
            layer.n_in,
            layer.n_out,
            alpha.shape[1],
        )
        body += struct.pack(f"<{layer.q}H", *ids)
        body += alpha.astype("<f4").tobytes()
        body += np.packbits(layer.encrypted_bits().cpu().numpy().reshape(-1)).tobytes()
    head = bytearray(MAGIC) + struct.pack("<BHH", VERSION, len(matrices), len(layers))
    for m in matrices:
        head += struct.pack("<HH", *m.shape) + np.packbits(m.reshape(-1)).tobytes()
    return bytes(head + body)


def export_model(model: nn.Module, path: str | Path) -> int:
    """Write the ``.flexor`` file; returns its size in bytes."""
    from binexp.safeio import atomic_write

    data = pack_model(model)
    atomic_write(path, lambda f: f.write(data))
    return len(data)


def unpack(data: bytes) -> list[ExportedLayer]:
    """Parse ``.flexor`` bytes back into layers."""
    if data[:4] != MAGIC:
        raise ValueError("not a FleXOR export (bad magic)")
    version, n_mat, n_layers = struct.unpack_from("<BHH", data, 4)
    if version != VERSION:
        raise ValueError(f"unsupported FleXOR export version {version}")
    off = 4 + struct.calcsize("<BHH")
    mats = []
    for _ in range(n_mat):
        n_out, n_in = struct.unpack_from("<HH", data, off)
        off += 4
        nbytes = (n_out * n_in + 7) // 8
        mats.append(np.unpackbits(np.frombuffer(data, np.uint8, nbytes, off), count=n_out * n_in).reshape(n_out, n_in))
        off += nbytes
    layers = []
    fmt = "<HHBBBBHHH"
    for _ in range(n_layers):
        c_out, c_in, kh, kw, q, order, n_in, n_out, n_alpha = struct.unpack_from(fmt, data, off)
        off += struct.calcsize(fmt)
        ids = struct.unpack_from(f"<{q}H", data, off)
        off += 2 * q
        alpha = np.frombuffer(data, "<f4", q * n_alpha, off).astype(np.float32).reshape(q, n_alpha)
        off += 4 * q * n_alpha
        if ORDERS[order] == "filter":
            n_slices = c_out * -(-(c_in * kh * kw) // n_out)
        else:
            n_slices = -(-(c_out * c_in * kh * kw) // n_out)
        nbits = q * n_slices * n_in
        nbytes = (nbits + 7) // 8
        bits = np.unpackbits(np.frombuffer(data, np.uint8, nbytes, off), count=nbits).reshape(q, n_slices, n_in)
        off += nbytes
        layers.append(
            ExportedLayer((c_out, c_in, kh, kw), q, ORDERS[order], n_in, n_out, alpha, [mats[i] for i in ids], bits)
        )
    if off != len(data):
        raise ValueError(f"trailing bytes in FleXOR export ({len(data) - off})")
    return layers


def load_export(path: str | Path) -> list[ExportedLayer]:
    return unpack(Path(path).read_bytes())


def claimed_bytes(model: nn.Module) -> float:
    """What the accounting claims: sum of weight_bits / 8 + 4 bytes per alpha."""
    total = 0.0
    for _, layer in flexor_layers(model):
        s = layer.storage()
        total += s.weight_bits / 8 + 4 * s.inference_floats
    return total


def module_from_checkpoint(path: str | Path, load: bool = True):
    """Rebuild a run's :class:`~binexp.lit.module.ClassifierModule` from its checkpoint (the
    resolved run config is in the checkpoint's hparams) and load the weights (``load=False``:
    keep the fresh initialisation, e.g. to compare with the trained state)."""
    from binexp.lit.restore import build_module
    from binexp.runs import checkpoint

    path = Path(path)
    return build_module(checkpoint.load(path, "export"), path, "export", load_weights=load)


def verify_roundtrip(model: nn.Module, path: str | Path) -> dict:
    """Export, read back, rebuild with integer XOR and compare with the training forward.
    Returns sizes and the largest absolute difference (0.0 when exact)."""
    size = export_model(model, path)
    rebuilt = load_export(path)
    layers = flexor_layers(model)
    if len(rebuilt) != len(layers):
        raise AssertionError(f"{len(rebuilt)} layers in the export, {len(layers)} in the model")
    max_diff = 0.0
    mismatched_bits = 0
    for (_, layer), ex in zip(layers, rebuilt):
        with torch.no_grad():
            w = layer.quantized_weight().detach().cpu().float()
            bits = (layer.weight_signs().cpu() > 0).numpy().reshape(ex.q, *ex.shape)
        mismatched_bits += int((bits != ex.decrypted_bits().astype(bool)).sum())
        max_diff = max(max_diff, float((w - ex.weight()).abs().max()))
    return {
        "bytes": size,
        "claimed_bytes": claimed_bytes(model),
        "max_abs_diff": max_diff,
        "mismatched_bits": mismatched_bits,
        "layers": len(layers),
    }


__all__ = [
    "ExportedLayer",
    "claimed_bytes",
    "export_model",
    "flexor_layers",
    "load_export",
    "module_from_checkpoint",
    "pack_model",
    "unpack",
    "verify_roundtrip",
]
