"""GF(2) linear algebra for FleXOR's XOR-gate networks (no torch needed, numpy in and out).

A FleXOR XOR network is a 0/1 matrix M of shape (N_out, N_in): row r lists the encrypted bits
that feed XOR gate r. Decryption of a slice x in {0,1}^N_in is y = M x mod 2. Everything a
layer reports about its M (rank, unused inputs, reachable patterns) is computed here.

* ``rank(M)``: the GF(2) rank. Only 2^rank of the 2^N_out output patterns are reachable, so a
  slice carries ``rank`` bits of information however many bits are stored.
* ``unused_columns(M)``: inputs that feed no gate (stored but never read).
* ``matmul(M, X)``: batched decryption, (X @ M^T) mod 2 with integer arithmetic.
"""

from __future__ import annotations

import numpy as np


def as_bits(m) -> np.ndarray:
    """A 0/1 uint8 array from anything array-like (bool, int, float 0/1, torch tensors)."""
    a = np.asarray(m.detach().cpu().numpy() if hasattr(m, "detach") else m)
    if a.size and not np.isin(a, (0, 1)).all():
        raise ValueError("a GF(2) matrix must hold only 0 and 1")
    return a.astype(np.uint8)


def _row_ints(m: np.ndarray) -> list[int]:
    """Each row as a Python int bit mask (bit j = column j), for elimination on any width."""
    weights = [1 << j for j in range(m.shape[1])]
    return [sum(w for w, b in zip(weights, row) if b) for row in m.tolist()]


def rank(m) -> int:
    """Rank of a 0/1 matrix over GF(2) (Gaussian elimination on row bit masks).

    Example: the FleXOR paper's Fig. 2 matrix (rows 1011, 1100, 1110, 0011, 0101, 0111) has
    rank 4; any matrix whose rows all have an even number of ones has rank <= N_in - 1."""
    a = as_bits(m)
    if a.ndim != 2:
        raise ValueError(f"rank needs a 2-D matrix, got shape {a.shape}")
    basis: dict[int, int] = {}  # leading bit -> reduced row
    for row in _row_ints(a):
        while row:
            lead = row.bit_length() - 1
            if lead not in basis:
                basis[lead] = row
                break
            row ^= basis[lead]
    return len(basis)


class IncrementalBasis:
    """A GF(2) row space grown one row at a time: ``add(row)`` returns True when the row was
    independent of the rows added before (and keeps it), False otherwise."""

    def __init__(self) -> None:
        self.basis: dict[int, int] = {}

    def reduce(self, row: int) -> int:
        while row:
            lead = row.bit_length() - 1
            if lead not in self.basis:
                return row
            row ^= self.basis[lead]
        return 0

    def add(self, row_bits) -> bool:
        row = self.reduce(_row_ints(as_bits(row_bits).reshape(1, -1))[0])
        if not row:
            return False
        self.basis[row.bit_length() - 1] = row
        return True

    @property
    def rank(self) -> int:
        return len(self.basis)


def unused_columns(m) -> np.ndarray:
    """Indices of the columns (encrypted inputs) that feed no row (gate)."""
    a = as_bits(m)
    return np.flatnonzero(a.sum(axis=0) == 0)


def unused_share(m) -> float:
    """Share of the N_in encrypted inputs that feed no gate."""
    a = as_bits(m)
    return float(len(unused_columns(a))) / a.shape[1]


def matmul(m, x) -> np.ndarray:
    """XOR decryption over GF(2): for M (N_out, N_in) and X (..., N_in) of 0/1 returns
    Y = (X @ M^T) mod 2, shape (..., N_out), uint8, in integer arithmetic."""
    a = as_bits(m).astype(np.int64)
    xb = as_bits(x).astype(np.int64)
    return ((xb @ a.T) & 1).astype(np.uint8)


def max_rank(n_in: int, n_out: int, n_tap: int) -> int:
    """Largest GF(2) rank an N_out x N_in matrix with exactly ``n_tap`` ones per row can have:
    1 when every row is all ones (n_tap = N_in); min(N_out, N_in - 1) for even n_tap (every row
    lies in the even-weight subspace, which has dimension N_in - 1); min(N_out, N_in) otherwise."""
    if not 1 <= n_tap <= n_in:
        raise ValueError(f"n_tap must be in [1, n_in={n_in}], got {n_tap}")
    if n_tap == n_in:
        return 1
    if n_tap % 2 == 0:
        return min(n_out, n_in - 1)
    return min(n_out, n_in)


__all__ = ["IncrementalBasis", "as_bits", "matmul", "max_rank", "rank", "unused_columns", "unused_share"]
