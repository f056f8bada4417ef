#!/usr/bin/env python
"""Training-speed benchmark for any binexp config, on CPU or GPU.

    python scripts/bench.py model=resnet20 data=synthetic data.batch_size=128 \
        --vs quantizer=fp quantizer=xnor quantizer=rbnn quantizer=flexor quantizer=bireal
    python scripts/bench.py model=resnet20 data=synthetic data.batch_size=64 --every-quantizer

For each config (the common overrides plus one ``--vs`` entry) it builds exactly what
``binexp train`` builds (datamodule, network, optimizer, LR schedule), warms up, then times
training steps split into data + augmentation, forward (+ loss), backward and optimizer, each
phase fenced by a device synchronisation (for measurement only: training itself never
synchronises). Configs are timed in alternating rounds in one process, and each ratio is the
median of the per-round ratios, so they hold on a noisy machine (``--steps 1`` with many rounds
alternates configs step by step, for a machine whose load changes by the minute). It also times
each method's per-epoch work (RBNN's rotation update, the surrogate schedules:
``layer.epoch_start``) and reports it as a share of one full epoch of
``--epoch-images`` images (50,000: CIFAR-10) extrapolated from the measured step time, and,
with ``--epoch``, times one real epoch through Lightning on the configured data.

Results go to stdout and to ``--json`` (default ``bench.json``). ``--every-quantizer`` times every
registered quantizer (``binexp list quantizer``), XNOR-Net first so that each ratio is to XNOR's step."""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
import torch.nn.functional as F


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Bench:
    """One config, ready to step."""

    def __init__(
        self,
        label: str,
        overrides: list[str],
        device: torch.device,
        precision: str,
        channels_last: bool,
        compile_net: bool,
    ) -> None:
        from binexp.config import validate
        from binexp.data import build_datamodule
        from binexp.lit.module import ClassifierModule
        from binexp.optimizer import build_optimizer
        from binexp.preflight import compose
        from binexp.quant import quantized_layers

        self.label, self.device = label, device
        cfg = compose(overrides)
        run = validate(cfg)
        torch.manual_seed(0)
        self.dm = build_datamodule(run.data)
        self.dm.setup("fit")
        if device.type != "cpu" and getattr(self.dm, "resident_on_device", False):
            self.dm.train_set.to(device)  # as in training: the uint8 set lives on the accelerator
        self.module = ClassifierModule(run.model, run.quantizer, run.schedule, self.dm.num_classes).to(device)
        if channels_last:
            self.module.use_channels_last()
        if compile_net:
            self.module.net.compile()
        self.module.train()
        self.layers = [m for _, m in quantized_layers(self.module)]
        self.optimizer = build_optimizer(run.schedule, self.module.parameters())
        self.batch_size = run.data.batch_size
        self.autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16-mixed")
        self.loader = self.dm.train_dataloader()
        self.it = iter(self.loader)
        self.times: dict[str, list[float]] = {"data": [], "forward": [], "backward": [], "optimizer": [], "step": []}
        self.epoch_work: list[float] = []

    def next_batch(self):
        try:
            batch = next(self.it)
        except StopIteration:
            self.it = iter(self.loader)
            batch = next(self.it)
        x, y = batch
        y = y.to(self.device, non_blocking=True)
        if getattr(self.dm, "decode", None) == "tensor":  # ImageFolder: file bytes, decoded on the device
            from binexp.data.imagefolder import decode_batch

            dm = self.dm
            return decode_batch(x, self.device, True, dm.image_size, dm.crop_ratio, dm.scale), y
        x = x.to(self.device, non_blocking=True)
        return self.dm.transform_batch((x, y), train=True) if hasattr(self.dm, "transform_batch") else (x, y)

    def step(self, record: bool) -> None:
        d = self.device
        sync(d)
        t0 = time.perf_counter()
        x, y = self.next_batch()
        sync(d)
        t1 = time.perf_counter()
        for layer in self.layers:
            layer.step_start(0, 0)
        with self.autocast:
            loss = F.cross_entropy(self.module(x), y)
        sync(d)
        t2 = time.perf_counter()
        loss.backward()
        sync(d)
        t3 = time.perf_counter()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        for layer in self.layers:
            layer.step_end(0, 0)
        sync(d)
        t4 = time.perf_counter()
        if record:
            for key, value in zip(
                ("data", "forward", "backward", "optimizer", "step"), (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t4 - t0)
            ):
                self.times[key].append(value)

    def epoch_start(self, epoch: int, epochs: int) -> None:
        sync(self.device)
        t0 = time.perf_counter()
        for layer in self.layers:
            layer.epoch_start(epoch, epochs, 0)
        sync(self.device)
        self.epoch_work.append(time.perf_counter() - t0)

    def result(self, epoch_images: int) -> dict:
        med = {k: statistics.median(v) for k, v in self.times.items()}
        steps_per_epoch = epoch_images / self.batch_size
        work = statistics.median(self.epoch_work) if self.epoch_work else 0.0
        epoch_s = steps_per_epoch * med["step"] + work
        out = {
            "label": self.label,
            "batch_size": self.batch_size,
            "steps_timed": len(self.times["step"]),
            "step_ms": 1e3 * med["step"],
            "images_per_s": self.batch_size / med["step"],
            "share": {k: med[k] / med["step"] for k in ("data", "forward", "backward", "optimizer")},
            "epoch_work_ms": 1e3 * work,
            "epoch_work_share": work / epoch_s if epoch_s else 0.0,
            "epoch_s_extrapolated": epoch_s,
            "step_ms_all": [round(1e3 * t, 3) for t in self.times["step"]],
        }
        if self.device.type == "cuda":
            out["peak_memory_mib"] = torch.cuda.max_memory_allocated(self.device) / 2**20
        return out


def time_lightning_epoch(overrides: list[str], device: torch.device) -> float:
    """Wall time of one real training epoch (no validation, no checkpoints) through Lightning."""
    import lightning.pytorch as L

    from binexp.config import validate
    from binexp.data import build_datamodule
    from binexp.lit.callbacks import QuantizerSchedule
    from binexp.lit.module import ClassifierModule
    from binexp.preflight import compose

    run = validate(compose(overrides))
    dm = build_datamodule(run.data)
    module = ClassifierModule(run.model, run.quantizer, run.schedule, dm.num_classes)
    trainer = L.Trainer(
        max_epochs=1,
        accelerator=device.type,
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        callbacks=[QuantizerSchedule()],
    )
    t0 = time.perf_counter()
    trainer.fit(module, datamodule=dm)
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("overrides", nargs="*", help="Hydra overrides shared by every config")
    p.add_argument(
        "--vs", nargs="+", default=None, help="one extra override (or several joined by spaces in quotes) per config"
    )
    p.add_argument(
        "--every-quantizer",
        action="store_true",
        help="one config per registered quantizer, xnor first (ratios to XNOR); adds to --vs",
    )
    p.add_argument("--steps", type=int, default=10, help="timed steps per config per round")
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds over the configs")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps per config before timing")
    p.add_argument(
        "--epoch-images", type=int, default=50_000, help="images in the epoch the per-epoch work is compared with"
    )
    p.add_argument("--epoch", action="store_true", help="also time one real epoch through Lightning per config")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--precision", default="32-true", choices=("32-true", "bf16-mixed"))
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--compile", action="store_true")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--json", default="bench.json")
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    variants = a.vs or []
    if a.every_quantizer:
        from binexp.quant.registry import quantizer_names

        variants = [*(f"quantizer={q}" for q in sorted(quantizer_names(), key=lambda q: q != "xnor")), *variants]
    variants = variants or [""]
    benches = [
        Bench(v or "base", list(a.overrides) + v.split(), device, a.precision, a.channels_last, a.compile)
        for v in variants
    ]
    for b in benches:
        for _ in range(a.warmup):
            b.step(record=False)
    for r in range(a.rounds):
        for b in benches:
            b.epoch_start(r, max(a.rounds, 1))
            for _ in range(a.steps):
                b.step(record=True)
    results = [b.result(a.epoch_images) for b in benches]
    if a.epoch:
        for b, res in zip(benches, results):
            res["lightning_epoch_s"] = time_lightning_epoch(
                list(a.overrides) + (b.label.split() if b.label != "base" else []), device
            )

    # ratio: the median over rounds of each round's step-time ratio to the first config, so that a
    # machine whose load changes between rounds (a shared one) shifts both sides of each ratio alike
    def round_medians(res: dict) -> list[float]:
        steps = res["step_ms_all"]
        return [statistics.median(steps[r * a.steps : (r + 1) * a.steps]) for r in range(a.rounds)]

    base = round_medians(results[0])
    for res in results:
        res["step_ratio_to_first"] = statistics.median(t / b for t, b in zip(round_medians(res), base))
    machine = {
        "device": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else platform.processor() or platform.machine(),
        "cpu_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "max_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    print(
        f"# binexp bench: {' '.join(a.overrides)} | device {machine['device']} ({device.type}), "
        f"{machine['cpu_threads']} threads, torch {machine['torch']}, {machine['date']}"
    )
    print(
        f"# precision {a.precision}, channels_last {a.channels_last}, compile {a.compile}; "
        f"{a.rounds} rounds x {a.steps} steps after {a.warmup} warm-up; medians (ratio: of the per-round ratios)"
    )
    header = (
        f"{'config':<28}{'step ms':>9}{'img/s':>9}{'ratio':>7}{'data':>7}{'fwd':>7}{'bwd':>7}{'opt':>7}"
        f"{'epoch work ms':>15}{'share of epoch':>16}"
    )
    print(header)
    for res in results:
        s = res["share"]
        print(
            f"{res['label']:<28}{res['step_ms']:>9.1f}{res['images_per_s']:>9.0f}{res['step_ratio_to_first']:>7.2f}"
            f"{100 * s['data']:>6.1f}%{100 * s['forward']:>6.1f}%"
            f"{100 * s['backward']:>6.1f}%{100 * s['optimizer']:>6.1f}%"
            f"{res['epoch_work_ms']:>15.2f}{100 * res['epoch_work_share']:>15.3f}%"
            + (f"  epoch {res['lightning_epoch_s']:.1f}s" if "lightning_epoch_s" in res else "")
            + (f"  peak {res['peak_memory_mib']:.0f} MiB" if "peak_memory_mib" in res else "")
        )
    print(
        f"# share of epoch: per-epoch method work / one {a.epoch_images}-image epoch extrapolated from the step time; "
        f"process peak RSS {machine['max_rss_mib']:.0f} MiB"
    )
    Path(a.json).write_text(json.dumps({"machine": machine, "args": vars(a), "results": results}, indent=2))
    print(f"# wrote {a.json}")


if __name__ == "__main__":
    main()
