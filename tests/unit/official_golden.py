"""Golden values computed by the methods' official layers, frozen in ``golden/official_layers.json``.

How they were made (once, outside the repository; neither the official code nor the network is
needed here): the official layer and binexp's were built in float64 with the same latent weight
``W`` (and, for XNOR-Net++, the same scale factors), fed the same input ``X``, and
``sum(y * G)`` was backpropagated; the JSON holds the official layer's output ``y`` and every
gradient (``dx``, ``dW``, the scale factors'), flattened in PyTorch's row-major order.

* BiBench (htqin/BiBench@5a04a6d, ``bibench/models/layers/``): ``BNNConv2d`` -> ``bnn``,
  ``XNORConv2d`` -> ``xnor_bibench``, ``DoReFaConv2d`` -> ``dorefa_bibench``,
  ``XNORPlusPlusConv2d`` -> ``xnorpp`` (scales in ``xnorpp_scales``).
* IR-Net (htqin/IR-Net@f63a590, ``CIFAR-10/ResNet20/1w1a/modules/ir_1w1a.py:IRConv2d``, ``.cuda()``
  removed): ``irnet`` at five schedule points ``"<t_min>_<epoch>_<epochs>"`` with the (k, t) used.
* BiBench's linear layers (``BNNLinear``, ``DoReFaLinear``, ``XNORPlusPlusLinear``, ``XNORLinear``):
  ``bnn_linear``, ``dorefa_linear``, ``xnorpp_linear`` (o in ``linear_inputs``), ``xnor_linear``.
* BiBench's ``ReCULinear`` (same commit, ``layers/recu.py``): ``recu_linear`` at ``"<epoch>_<train|eval>"``
  of 400 epochs, with BiBench's float32 tau and the alpha used.
* BiBench's ``FDALinear`` (same commit, ``layers/fda.py``): ``fda_linear`` at ``"<epoch>_400"``, 64 input
  features (both noise MLPs non-zero), inputs and noise-MLP weights as in ``test_fda.py``, BiBench's
  float32 alpha_t and its n.
* DoReFa ``variant=paper``: a line-by-line PyTorch transcription of tensorpack's
  ``examples/DoReFa-Net/dorefa.py:get_dorefa`` (``fw``, ``fa``, Round/Sign gradients overridden
  with the identity) after ``clip_by_value(x, 0, 1)`` (TensorFlow itself was not run):
  ``dorefa_paper`` for W1A1, W2A1, W3A2.

Inputs are smooth closed forms (no value at 0 or +-1, where sign conventions and clamp edges
differ between implementations): conv 2 -> 3 channels, 3x3, stride 1, padding 1, input 2x2x4x4.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from torch import nn

from binexp.quant.layers import ConvSpec

GOLDEN = json.loads((Path(__file__).parent / "golden" / "official_layers.json").read_text())
CIN, COUT, K, PAD, N, H = 2, 3, 3, 1, 2, 4
SPEC = ConvSpec(CIN, COUT, K, 1, PAD)
TOL = {"rtol": 1e-13, "atol": 1e-13}  # float64: the largest difference seen was 1.2e-14 (IR-Net, t = 9.77)


def wave(shape: tuple[int, ...], a: float, b: float, c: float) -> torch.Tensor:
    """a sin(b i + c) over the flat index i, float64, reshaped."""
    return (a * torch.sin(b * torch.arange(math.prod(shape), dtype=torch.float64) + c)).reshape(shape)


W = wave((COUT, CIN, K, K), 1.3, 1.7, 0.3)
X = wave((N, CIN, H, H), 1.6, 0.9, 0.2)
G = wave((N, COUT, H, H), 1.0, 0.55, 0.7)


def with_weight(layer: nn.Module) -> nn.Module:
    layer = layer.double()
    with torch.no_grad():
        layer.weight.copy_(W)
    return layer


def run(layer: nn.Module, **params: torch.Tensor) -> dict[str, torch.Tensor]:
    """Output and gradients of ``sum(layer(X) * G)``: ``y``, ``dx``, ``dW`` and ``d<name>`` for ``params``."""
    x = X.clone().requires_grad_(True)
    y = layer(x)
    (y * G).sum().backward()
    out = {"y": y.detach(), "dx": x.grad, "dW": layer.weight.grad}
    out.update({f"d{name}": p.grad for name, p in params.items()})
    return out


def assert_matches(got: dict[str, torch.Tensor], golden: dict) -> None:
    for key, value in got.items():
        expected = torch.tensor(golden[key], dtype=torch.float64)
        flat = value.flatten()[: expected.numel()]
        torch.testing.assert_close(flat, expected, **TOL, msg=lambda m, key=key: f"{key}: {m}")


# -- linear rules: BiBench's BNNLinear, DoReFaLinear, XNORPlusPlusLinear (tokens (2, 3, 6)) and
# XNORLinear (rows (6, 6): its per-token scale only works on 2-D inputs), weight (4, 6), FP bias
IN, OUT = 6, 4
LW = wave((OUT, IN), 1.3, 1.7, 0.3)
LB = wave((OUT,), 0.5, 0.8, 0.1)
LX = wave((2, 3, IN), 1.6, 0.9, 0.2)
LG = wave((2, 3, OUT), 1.0, 0.55, 0.7)


def run_linear(layer: nn.Module, rows: bool = False, **params: torch.Tensor) -> dict[str, torch.Tensor]:
    """``y``, ``dx``, ``dW``, ``db`` (and ``d<name>``) of ``sum(layer(LX) * LG)`` with weight LW, bias LB;
    ``rows``: the input as (6, 6) rows instead of (2, 3, 6) tokens."""
    layer = layer.double()
    with torch.no_grad():
        layer.weight.copy_(LW)
        layer.bias.copy_(LB)
    x = (LX.reshape(-1, IN) if rows else LX).clone().requires_grad_(True)
    y = layer(x)
    (y * (LG.reshape(-1, OUT) if rows else LG)).sum().backward()
    out = {"y": y.detach(), "dx": x.grad, "dW": layer.weight.grad, "db": layer.bias.grad}
    out.update({f"d{name}": p.grad for name, p in params.items()})
    return out
