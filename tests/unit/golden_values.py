"""Golden values computed once by running a method's official code (outside this repository)
on the inputs :func:`pattern` builds, frozen in ``tests/unit/golden/<method>.json``; the tests need
neither the official code nor the network."""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch

GOLDEN = Path(__file__).resolve().parent / "golden"


def pattern(shape: tuple[int, ...], a: float, b: float, scale: float = 1.0) -> torch.Tensor:
    """A fixed float64 tensor, sin(a i + b) * scale over i = 0, 1, ... in row-major order."""
    n = math.prod(shape)
    return (torch.sin(a * torch.arange(n, dtype=torch.float64) + b) * scale).reshape(shape)


def load(method: str) -> dict:
    return json.loads((GOLDEN / f"{method}.json").read_text())


def run(forward, x: torch.Tensor, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Output of ``forward(x)`` and dL/dx for L = sum(output * g)."""
    x = x.clone().requires_grad_(True)
    y = forward(x)
    (y * g).sum().backward()
    assert x.grad is not None
    return y.detach().flatten(), x.grad.flatten()


def close(actual: torch.Tensor, expected: list[float], tol: float = 1e-12) -> bool:
    """Equal to float64 precision: max abs difference <= tol."""
    e = torch.tensor(expected, dtype=torch.float64)
    a = actual.detach().double().flatten()
    return a.shape == e.shape and float((a - e).abs().max()) <= tol
