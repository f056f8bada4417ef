"""The reproduced tables: which experiment presets make each one, and how to run it.

Every table script in this folder is ``run_table(<name>)``: one ``binexp train -m
experiment=a,b,...`` sweep into ``outputs/tables/<name>/<time>/``, then ``binexp report`` on it
(one row per experiment, the paper's number beside ours). ``--smoke`` runs the same sweep on
``data=synthetic`` for one short epoch; any other argument goes to ``binexp train`` unchanged
(e.g. ``trainer=ddp``, ``seed=1,2,3``, ``data.root=/datasets/cifar10``)."""

from __future__ import annotations

import argparse
import subprocess
import sys
from datetime import datetime
from pathlib import Path

SMOKE = ["data=synthetic", "trainer.max_epochs=1", "trainer.limit_train_batches=2", "trainer.limit_val_batches=1",
         "trainer.enable_progress_bar=false", "trainer.num_sanity_val_steps=0"]

# name: (title, experiments, full-scale budget in image-epochs ("epochs x training images") per run)
TABLES: dict[str, tuple[str, list[str], str]] = {
    "rbnn_cifar": ("RBNN Table 1: CIFAR-10, W/A 1/1", [
        "rbnn_cifar_resnet18", "rbnn_cifar_resnet20", "rbnn_cifar_resnet20_bireal", "rbnn_cifar_vgg_small"],
        "1000 epochs x 50k images each"),
    "rbnn_ablation": ("RBNN Table 4 ablation (ResNet-20, Bi-Real shortcuts) with the reviewers' extras", [
        "rbnn_ablation_xnor", "rbnn_ablation_t", "rbnn_ablation_r", "rbnn_ablation_rt", "rbnn_ablation_rat",
        "rbnn_ablation_per_epoch", "rbnn_ablation_per_step", "rbnn_ablation_full", "rbnn_ablation_alpha_fixed",
        "rbnn_ablation_tanh", "rbnn_ablation_angle_penalty", "rbnn_ablation_theta_clip", "rbnn_ablation_theta_bounded"],
        "1000 epochs x 50k images each"),
    "rbnn_xnor_bireal": ("RBNN reviewer 3's layout, CIFAR-10 ResNet-20: XNOR / XNOR + RBNN / Bi-Real / Bi-Real + RBNN", [
        "xnor_cifar_resnet20", "rbnn_cifar_resnet20", "bireal_cifar_resnet20", "rbnn_cifar_resnet20_bireal"],
        "1000 epochs x 50k images each"),
    "rbnn_xnor_bireal_imagenet": ("RBNN reviewer 3's layout, ImageNet ResNet-18: XNOR / Bi-Real / Bi-Real + RBNN", [
        "xnor_imagenet_resnet18", "bireal_imagenet_resnet18", "rbnn_imagenet_resnet18"],
        "150 (XNOR, RBNN) or 256 (Bi-Real) epochs x 1.28M images"),
    "rbnn_imagenet": ("RBNN Table 2: ImageNet, W/A 1/1, ResNet-18 and ResNet-34 (top-1; --metric val_acc5 for top-5)", [
        "rbnn_imagenet_resnet18", "rbnn_imagenet_resnet34"], "150 epochs x 1.28M images each"),
    "flexor_table1": ("FleXOR Table 1: CIFAR-10, N_out = 20, 0.4-1.0 bits/weight", [
        f"flexor_resnet{d}_b{b}" for d in (20, 32) for b in ("10", "08", "06", "04")], "500 epochs x 50k images each"),
    "flexor_table1_nout10": ("FleXOR Table 5 (appendix): the Table 1 sweep with N_out = 10", [
        f"flexor_resnet{d}_nout10_b{b}" for d in (20, 32) for b in ("10", "08", "06", "04")], "500 epochs x 50k images each"),
    "flexor_table2": ("FleXOR Table 2: per-stage N_in (ResNet-20, N_out = 20) against uniform 0.4 bit", [
        "flexor_resnet20_stage_19_16_7", "flexor_resnet20_b04"], "500 epochs x 50k images each"),
    "flexor_fig5": ("FleXOR Fig. 5: training schemes (ResNet-32, 0.8 bit, N_out = 10)", [
        "flexor_fig5_flexor", "flexor_fig5_analog", "flexor_fig5_ste"], "200 epochs x 50k images each"),
    "bireal_imagenet": ("Bi-Real Net on ImageNet (W/A 1/1)", [
        "bireal_imagenet_resnet18", "bireal_imagenet_resnet34"], "256 epochs x 1.28M images each"),
}


def binexp(*args: str) -> list[str]:
    return [sys.executable, "-m", "binexp", *args]


def run_table(name: str, argv: list[str] | None = None) -> int:
    title, experiments, budget = TABLES[name]
    parser = argparse.ArgumentParser(description=f"{title}: runs the sweep, then prints the table. Full scale: {budget}.")
    parser.add_argument("--smoke", action="store_true", help="same sweep on data=synthetic, one short epoch per run")
    parser.add_argument("--out", default=None, help="sweep directory (default outputs/tables/<table>/<time>)")
    parser.add_argument("--format", default="md", choices=("md", "csv", "latex"))
    args, extra = parser.parse_known_args(argv)
    stamp = datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    out = Path(args.out or f"outputs/tables/{name}{'_smoke' if args.smoke else ''}/{stamp}")
    cmd = binexp("train", "-m", "experiment=" + ",".join(experiments), *(SMOKE if args.smoke else []), *extra,
                 f"hydra.sweep.dir={out}")
    print("$", " ".join(cmd[2:]), flush=True)
    train = subprocess.run(cmd)
    print(f"\n## {title}{' (smoke: synthetic data, one short epoch)' if args.smoke else ''}\n", flush=True)
    report = subprocess.run(binexp("report", str(out), "--by", "experiment", "--format", args.format))
    return train.returncode or report.returncode
