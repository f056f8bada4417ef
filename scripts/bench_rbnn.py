#!/usr/bin/env python
"""Benchmark RBNN's overheads on the CPU (or --device cuda).

1. The rotation update (3 alternating rounds, all binarized layers) of ImageNet ResNet-18 and
   CIFAR ResNet-20: what runs once per epoch before the first training step (and before every
   step with ``quantizer.update_interval=step``).
2. One training step (forward + backward + SGD step) of RBNN relative to XNOR on the same model
   and batch, and the eval forward (RBNN caches sign(w~) when no gradient is needed).

    .venv/bin/python scripts/bench_rbnn.py                 # defaults: 2 threads, ResNet-20 batch 64
    .venv/bin/python scripts/bench_rbnn.py --json out.json --imagenet-step   # + ResNet-18 at 112 px, batch 16
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from binexp.config import to_schema
from binexp.models import ModelConfig, build_model
from binexp.quant import ConvFactory, get_quantizer, quantized_layers


def quantizer_cfg(name: str, **fields):
    return to_schema(get_quantizer(name).schema, OmegaConf.create({"name": name, **fields}), "quantizer")


def build(model: str, quantizer: str, classes: int, device: str, **fields) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(ModelConfig(name=model), ConvFactory(quantizer_cfg(quantizer, **fields)), classes).to(device)


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn, repeats: int, warmup: int, device: str) -> list[float]:
    for _ in range(warmup):
        fn()
    sync(device)
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync(device)
        out.append(time.perf_counter() - t0)
    return out


def bench_update(model: str, classes: int, device: str, repeats: int, **fields) -> dict:
    net = build(model, "rbnn", classes, device, **fields)
    layers = [layer for _, layer in quantized_layers(net)]

    def update():
        for layer in layers:
            layer.update_rotation()

    times = timed(update, repeats, 1, device)
    per_layer = {}
    for name, layer in quantized_layers(net):
        t = timed(layer.update_rotation, 3, 0, device)
        per_layer[name.removeprefix("net.")] = round(statistics.median(t) * 1e3, 2)
    slowest = max(per_layer, key=per_layer.get)
    return {
        "model": model,
        "layers": len(layers),
        "update_all_layers_ms": round(statistics.median(times) * 1e3, 1),
        "min_ms": round(min(times) * 1e3, 1),
        "slowest_layer": slowest,
        "slowest_layer_ms": per_layer[slowest],
        "rotation_floats": sum(layer.R1.numel() + layer.R2.numel() for layer in layers),
        **fields,
    }


def bench_step(model: str, classes: int, size: int, batch: int, device: str, repeats: int) -> dict:
    """XNOR and RBNN steps timed alternately (so background load hits both alike)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 3, size, size, generator=g).to(device)
    y = torch.randint(0, classes, (batch,), generator=g).to(device)
    steps, evals = {}, {}
    for q in ("xnor", "rbnn"):
        net = build(model, q, classes, device)
        opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
        for _, layer in quantized_layers(net):
            layer.epoch_start(0, 10)

        def step(net=net, opt=opt):
            net.train()
            for _, layer in quantized_layers(net):
                layer.step_start(0, 0)
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(net(x), y).backward()
            opt.step()

        def evaluate(net=net):
            net.eval()
            with torch.inference_mode():
                net(x)

        steps[q], evals[q] = step, evaluate
    times = {f"{q}_{kind}": [] for q in steps for kind in ("step", "eval_first", "eval")}
    for q in steps:  # warm-up
        steps[q]()
        evals[q]()
    for _ in range(repeats):
        for q in steps:
            times[f"{q}_step"] += timed(steps[q], 1, 0, device)
            times[f"{q}_eval_first"] += timed(evals[q], 1, 0, device)  # weights just changed
            times[f"{q}_eval"] += timed(evals[q], 1, 0, device)  # steady state (RBNN: cached sign(w~))
    result = {"model": model, "batch": batch, "image_size": size}
    result.update({f"{k}_ms": round(statistics.median(v) * 1e3, 1) for k, v in times.items()})
    result["rbnn_over_xnor_step"] = round(
        statistics.median([r / x for r, x in zip(times["rbnn_step"], times["xnor_step"])]), 3
    )
    for kind in ("eval_first", "eval"):
        result[f"rbnn_over_xnor_{kind}"] = round(
            statistics.median([r / x for r, x in zip(times[f"rbnn_{kind}"], times[f"xnor_{kind}"])]), 3
        )
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (CPU)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--batch", type=int, default=64, help="ResNet-20 step batch (32x32 images)")
    ap.add_argument(
        "--imagenet-step", action="store_true", help="also time an ImageNet ResNet-18 step (112 px, batch 16)"
    )
    ap.add_argument("--json", default=None, help="write the results here too")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    env = {
        "torch": torch.__version__,
        "device": args.device,
        "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
    }
    updates = [
        bench_update("resnet18", 1000, args.device, args.repeats),
        bench_update("resnet20", 10, args.device, args.repeats),
        bench_update("resnet20", 10, args.device, args.repeats, rotation_kind="full"),
    ]
    steps = [bench_step("resnet20", 10, 32, args.batch, args.device, args.repeats)]
    if args.imagenet_step:
        steps.append(bench_step("resnet18", 1000, 112, 16, args.device, max(2, args.repeats // 2)))

    print(f"# RBNN benchmark  {env}")
    print("\n## rotation update, all binarized layers (3 rounds each), median of", args.repeats)
    for u in updates:
        kind = u.get("rotation_kind", "bi")
        print(
            f"  {u['model']:<9} {kind:<4} {u['layers']:>2} layers  {u['update_all_layers_ms']:>8.1f} ms"
            f"  (min {u['min_ms']:.1f}; slowest {u['slowest_layer']} {u['slowest_layer_ms']:.1f} ms;"
            f" {u['rotation_floats']:,} rotation floats)"
        )
    print("\n## training step (fwd + bwd + SGD) and eval forward, RBNN vs XNOR, median of", args.repeats)
    for s in steps:
        print(
            f"  {s['model']:<9} batch {s['batch']} @ {s['image_size']}px: step xnor {s['xnor_step_ms']:.1f} ms, "
            f"rbnn {s['rbnn_step_ms']:.1f} ms (x{s['rbnn_over_xnor_step']:.2f}); first eval after a step xnor "
            f"{s['xnor_eval_first_ms']:.1f} ms, rbnn {s['rbnn_eval_first_ms']:.1f} ms "
            f"(x{s['rbnn_over_xnor_eval_first']:.2f}); "
            f"steady eval xnor {s['xnor_eval_ms']:.1f} ms, rbnn {s['rbnn_eval_ms']:.1f} ms "
            f"(x{s['rbnn_over_xnor_eval']:.2f})"
        )
    r20 = next(u for u in updates if u["model"] == "resnet20" and "rotation_kind" not in u)
    s20 = steps[0]
    print(
        f"\n  per-epoch update on ResNet-20 = {r20['update_all_layers_ms'] / s20['rbnn_step_ms']:.2f} training steps"
        f" of batch {s20['batch']}"
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"env": env, "updates": updates, "steps": steps}, f, indent=2)


if __name__ == "__main__":
    main()
