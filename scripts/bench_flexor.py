#!/usr/bin/env python
"""Time a FleXOR training step against XNOR-Net's on the same network (CPU by default).

One step = forward, cross-entropy, backward, SGD step, and the quantizer's per-step hook
(FleXOR: clipping the encrypted weights). Configurations are interleaved step by step so that
load from other processes hits them alike; the median over ``--iters`` steps is reported,
with the time FleXOR spends decrypting its weights (all layers' quantized_weight, forward
and backward) on its own.

    .venv/bin/python scripts/bench_flexor.py                      # ResNet-20, batch 128, CPU
    .venv/bin/python scripts/bench_flexor.py --iters 20 --n-in 8 --device cuda
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from binexp.models import build_model
from binexp.models.registry import ModelConfig
from binexp.quant import ConvFactory, quantized_layers
from binexp.quant.flexor import FlexorConfig
from binexp.quant.fp import FPConfig
from binexp.quant.xnor import XnorConfig


def configs(args) -> dict:
    return {
        "fp": FPConfig(),
        "xnor": XnorConfig(),  # W1/A1, the XNOR-Net default
        "xnor_w1a32": XnorConfig(binary_activations=False),  # BWN: weight-only, like FleXOR
        f"flexor_{args.n_in}/{args.n_out}": FlexorConfig(n_in=args.n_in, n_out=args.n_out, q=args.q, seed=0),
        f"flexor_{args.n_in}/{args.n_out}_analog": FlexorConfig(
            n_in=args.n_in, n_out=args.n_out, q=args.q, seed=0, scheme="analog"
        ),
    }


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="resnet20")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--n-in", type=int, default=16)
    p.add_argument("--n-out", type=int, default=20)
    p.add_argument("--q", type=int, default=1)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    size = 224 if args.model in ("resnet18", "resnet34") else 32
    x = torch.randn(args.batch, 3, size, size, device=device)
    y = torch.randint(0, 10, (args.batch,), device=device)

    runs = {}
    for name, cfg in configs(args).items():
        net = build_model(ModelConfig(name=args.model), ConvFactory(cfg), 10).to(device).train()
        opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-5)
        runs[name] = (net, opt, [layer for _, layer in quantized_layers(net)])

    def step(net, opt, layers) -> float:
        sync(device)
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(net(x), y).backward()
        opt.step()
        for layer in layers:
            layer.step_end(0, 0)
        sync(device)
        return time.perf_counter() - t0

    def decrypt(layers) -> float:
        sync(device)
        t0 = time.perf_counter()
        sum(layer.quantized_weight().sum() for layer in layers).backward()
        sync(device)
        return time.perf_counter() - t0

    times = {name: [] for name in runs}
    dec = {name: [] for name in runs if name.startswith("flexor")}
    for i in range(args.warmup + args.iters):
        for name, (net, opt, layers) in runs.items():
            t = step(net, opt, layers)
            if i >= args.warmup:
                times[name].append(t)
        for name in dec:
            t = decrypt(runs[name][2])
            if i >= args.warmup:
                dec[name].append(t)

    med = {name: statistics.median(ts) * 1000 for name, ts in times.items()}
    print(
        f"model {args.model}, batch {args.batch}, device {device}, torch threads {torch.get_num_threads()}, "
        f"median of {args.iters} steps after {args.warmup} warm-up (interleaved)"
    )
    print(f"{'config':<24}{'ms/step':>10}{'vs xnor':>10}{'vs xnor_w1a32':>15}{'min..max ms':>18}")
    for name, m in med.items():
        lo, hi = min(times[name]) * 1000, max(times[name]) * 1000
        print(f"{name:<24}{m:>10.1f}{m / med['xnor']:>9.2f}x{m / med['xnor_w1a32']:>14.2f}x{lo:>10.1f}..{hi:.1f}")
    for name, ts in dec.items():
        d = statistics.median(ts) * 1000
        print(
            f"{name}: weight decryption alone (all {len(runs[name][2])} layers, fwd+bwd) {d:.1f} ms "
            f"= {100 * d / med[name]:.1f}% of its step"
        )


if __name__ == "__main__":
    main()
