#!/usr/bin/env python
"""The reproduced tables: which experiment presets make each one, and how to run it.

    python scripts/tables.py --list                     # every table, its runs and full-scale budget
    python scripts/tables.py rbnn_cifar                 # full scale (needs the dataset; see README)
    python scripts/tables.py rbnn_cifar --smoke         # the same sweep at smoke scale (debug=smoke)
    python scripts/tables.py flexor_table1 trainer=ddp seed=1,2,3
    python scripts/tables.py cifar10c outputs/multiruns/<sweep> data.root=/datasets/CIFAR-10-C

A table is one ``binexp train -m experiment=a,b,...`` sweep into
``outputs/tables/<name>/<time>/``, then ``binexp report`` on it (one row per experiment, the
paper's number beside ours), rows in the order listed here (the paper's: Table 4's XNOR, T, R,
RT, RAT ...), each labelled by what it changes (the presets' ``meta.row``) where they say.
``--smoke`` adds ``debug=smoke`` (conf/debug/smoke.yaml: synthetic data, one short epoch), and per table
what it needs beside (``SMOKE_EXTRA``: smaller networks and batches, or the few epochs in which every
setting acts); any other
argument goes to ``binexp train`` unchanged (e.g. ``trainer=ddp``, ``seed=1,2,3``, ``data.root=/datasets/cifar10``)."""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from datetime import datetime
from pathlib import Path

SMOKE = ["debug=smoke"]  # conf/debug/smoke.yaml
# what --smoke adds per table beside debug=smoke (every row kept): smaller runs for the longest tables,
# or what a sweep needs for each of its settings to act within a smoke run
SMOKE_EXTRA: dict[str, list[str]] = {
    # 9 operators x 2 networks: quarter-width networks and batches of 32 (~1 min on 2 cores, not ~10)
    "bibench": ["model.width=0.25", "data.batch_size=32"],
    # 16 RBNN options, each acting within 8 steps (measured: 16 distinct val losses, 132 s on 2 cores):
    # BN gamma = 1 (the code's 1e-8 keeps the binarized branches out of the output: angle_penalty
    # ended at rbnn_ablation_t's loss); theta0 = 1 (inside the May-2020 code's init range [0, pi/2);
    # at the code's pi/2, alpha = 1 and dL/dtheta = 0, so the weight surrogate and the theta options
    # change nothing); 4 epochs of 2 batches of 32 (2, so per_step rotates more often than per_epoch):
    # t = 0.01 * 1000^(e/E) passes 1 in the last epoch, which act_t_cap and schedule_1000 change and
    # where theta jumps (by 5 rad in layer1.0.conv1), which theta_clip and theta_bounded stop
    "rbnn_ablation": [
        "model.bn_gamma_init=1",
        "++quantizer.theta_init=1.0",  # ++: the base config composed before the sweep has no rbnn quantizer
        "trainer.max_epochs=4",
        "data.batch_size=32",
    ],
}
CONF = Path(__file__).resolve().parents[1] / "conf" / "experiment"

# BiBench's eight operators in its tables' order (arXiv 2301.11233)
BIBENCH_OPERATORS = ("bnn", "xnor", "dorefa", "bireal", "xnorpp", "reactnet", "recu", "fda")

# name: (title, experiments, full-scale budget in image-epochs ("epochs x training images") per run)
TABLES: dict[str, tuple[str, list[str], str]] = {
    "rbnn_cifar": (
        "RBNN Table 1: CIFAR-10, W/A 1/1",
        ["rbnn_cifar_resnet18", "rbnn_cifar_resnet20", "rbnn_cifar_resnet20_bireal", "rbnn_cifar_vgg_small"],
        "1000 epochs x 50k images each",
    ),
    "rbnn_ablation": (
        "RBNN Table 4 ablation (ResNet-20, Bi-Real shortcuts) with the reviewers' extras",
        [
            "rbnn_ablation_xnor",
            "rbnn_ablation_t",
            "rbnn_ablation_r",
            "rbnn_ablation_rt",
            "rbnn_ablation_rat",
            "rbnn_ablation_per_epoch",
            "rbnn_ablation_per_step",
            "rbnn_ablation_full",
            "rbnn_ablation_alpha_fixed",
            "rbnn_ablation_alpha_unconstrained",
            "rbnn_ablation_tanh",
            "rbnn_ablation_angle_penalty",
            "rbnn_ablation_theta_clip",
            "rbnn_ablation_theta_bounded",
            "rbnn_ablation_act_t_cap",
            "rbnn_ablation_schedule_1000",
        ],
        "1000 epochs x 50k images each",
    ),
    "rbnn_surrogates": (
        "RBNN surrogate ablation (Sec. 3.4): the full method with every registered backward of sign",
        [
            "rbnn_ablation_rat",
            "rbnn_ablation_tanh",
            *(f"rbnn_surrogate_{s}" for s in ("ste", "clipped_ste", "approx_sign", "scaled_tanh", "swish_sign")),
        ],
        "1000 epochs x 50k images each",
    ),
    "rbnn_xnor_bireal": (
        "RBNN reviewer 3's layout, CIFAR-10 ResNet-20: XNOR / XNOR + RBNN / Bi-Real / Bi-Real + RBNN",
        ["xnor_cifar_resnet20", "rbnn_cifar_resnet20", "bireal_cifar_resnet20", "rbnn_cifar_resnet20_bireal"],
        "1000 epochs x 50k images each",
    ),
    "rbnn_xnor_bireal_imagenet": (
        "RBNN reviewer 3's layout, ImageNet ResNet-18: XNOR / Bi-Real / Bi-Real + RBNN",
        ["xnor_imagenet_resnet18", "bireal_imagenet_resnet18", "rbnn_imagenet_resnet18"],
        "150 (XNOR, RBNN) or 256 (Bi-Real) epochs x 1.28M images",
    ),
    "rbnn_imagenet": (
        "RBNN Table 2: ImageNet, W/A 1/1, ResNet-18 and ResNet-34 (top-1; --metric val_acc5 for top-5)",
        ["rbnn_imagenet_resnet18", "rbnn_imagenet_resnet34"],
        "150 epochs x 1.28M images each",
    ),
    "flexor_table1": (
        "FleXOR Table 1: CIFAR-10, N_out = 20, 0.4-1.0 bits/weight",
        [f"flexor_resnet{d}_b{b}" for d in (20, 32) for b in ("10", "08", "06", "04")],
        "500 epochs x 50k images each",
    ),
    "flexor_table1_nout10": (
        "FleXOR Table 5 (appendix): the Table 1 sweep with N_out = 10",
        [f"flexor_resnet{d}_nout10_b{b}" for d in (20, 32) for b in ("10", "08", "06", "04")],
        "500 epochs x 50k images each",
    ),
    "flexor_table2": (
        "FleXOR Table 2: per-stage N_in (ResNet-20, N_out = 20) against uniform 0.4 bit",
        ["flexor_resnet20_stage_19_16_7", "flexor_resnet20_b04"],
        "500 epochs x 50k images each",
    ),
    "flexor_fig5": (
        "FleXOR Fig. 5: training schemes (ResNet-32, 0.8 bit, N_out = 10)",
        ["flexor_fig5_flexor", "flexor_fig5_analog", "flexor_fig5_ste"],
        "200 epochs x 50k images each",
    ),
    "flexor_flatten": (
        (
            "FleXOR reviewers' question (R3): slices straddling filters, flatten=tf / torch / filter"
            " (ResNet-20, N_in = 16, N_out = 20)"
        ),
        ["flexor_resnet20_b08", "flexor_resnet20_b08_torch", "flexor_resnet20_b08_filter"],
        "500 epochs x 50k images each",
    ),
    "flexor_q": (
        (
            "FleXOR reviewers' question (R3): q = 1, 2, 3 bit planes at N_in = 8, N_out = 20 (ResNet-20),"
            " with q = 1 at 0.8 bit for equal storage, and DoReFa and LSQ 2- and 3-bit weights as multi-bit baselines"
        ),
        [
            "flexor_resnet20_q1",
            "flexor_resnet20_q2",
            "flexor_resnet20_q3",
            "flexor_resnet20_b08",
            "flexor_q_dorefa_w2",
            "flexor_q_dorefa_w3",
            "flexor_q_lsq_w2",
            "flexor_q_lsq_w3",
        ],
        "500 epochs x 50k images each",
    ),
    "flexor_apportion": (
        (
            "FleXOR reviewer 1: apportioning bits across layers at the same total, 0.6 bit (ResNet-20, N_out = 20):"
            " uniform N_in = 12 vs per-stage 16/15/11 and 8/9/13"
        ),
        ["flexor_resnet20_b06", "flexor_resnet20_b06_early", "flexor_resnet20_b06_late"],
        "500 epochs x 50k images each",
    ),
    "flexor_equal_size": (
        (
            "FleXOR reviewers' equal-size question: 0.6-bit ResNet-20 (32.35 KiB) against narrower 1-bit ResNet-20s"
            " of the same memory (width 0.82: 31.89 / 31.96 KiB)"
        ),
        ["flexor_resnet20_b06", "flexor_equal_size_bwn_w082", "flexor_equal_size_b10_w082"],
        "500 epochs x 50k images each",
    ),
    "flexor_reviewers": (
        (
            "FleXOR reviewers' extras at 0.8 bit (ResNet-20, N_out = 20): random M, a structured (cyclic) M,"
            " binary activations"
        ),
        ["flexor_resnet20_b08", "flexor_resnet20_b08_cyclic", "flexor_resnet20_b08_binact"],
        "500 epochs x 50k images each",
    ),
    "flexor_fig6": (
        "FleXOR Fig. 6: S_tanh (ResNet-32, 0.8 bit, N_out = 10)",
        [f"flexor_fig6_stanh{s}" for s in (5, 10, 20, 100)],
        "200 epochs x 50k images each",
    ),
    "flexor_fig7": (
        "FleXOR Fig. 7: N_tap (ResNet-32, 0.8 bit, N_out = 10)",
        [f"flexor_fig7_ntap{t}" for t in (1, 2, 3, 4)],
        "200 epochs x 50k images each",
    ),
    "flexor_fig4": (
        "FleXOR Fig. 4: LeNet-5 on MNIST, N_out = 10 / 20 at 0.4-0.8 bit, random M, and the FP net",
        [*(f"flexor_lenet5_mnist_nout{o}_b{b}" for o in (10, 20) for b in ("04", "06", "08")), "lenet5_mnist_fp"],
        "20 epochs x 60k images each",
    ),
    "flexor_table3": (
        "FleXOR Table 3: ResNet-18 on ImageNet (activations FP), top-1 and top-5",
        ["flexor_resnet18_imagenet_b08", "flexor_resnet18_imagenet_b063"],
        "100 epochs x 1.28M images each",
    ),
    "bireal_imagenet": (
        "Bi-Real Net on ImageNet (W/A 1/1)",
        ["bireal_imagenet_resnet18", "bireal_imagenet_resnet34"],
        "256 epochs x 1.28M images each",
    ),
    "bibench": (
        "BiBench accuracy track (arXiv 2301.11233), CIFAR-10: FP32 and the eight operators under one recipe"
        " (Adam 1e-3, cosine, 400 epochs), on binexp's CIFAR ResNet-20 and ResNet-18",
        ["bibench_fp", *(f"bibench_{m}" for m in BIBENCH_OPERATORS)],
        "200 (FP) or 400 epochs x 50k images each, per network",
    ),
}

# tables whose every experiment also runs on each of these networks (a model=... sweep; a model=
# override on the command line replaces it): rows are experiment x network
MODEL_SWEEPS: dict[str, tuple[str, ...]] = {"bibench": ("resnet20", "resnet18_cifar")}


USAGE = """usage: python scripts/tables.py <table> [--smoke] [--out DIR] [--format md|csv|latex] [train overrides...]
       python scripts/tables.py cifar10c <run or sweep dir>... [--again] [data overrides...]
       python scripts/tables.py --list"""

# tables made from runs that exist rather than from a sweep: name -> title
EVALUATIONS = {
    "cifar10c": "BiBench robustness track: trained runs side by side on CIFAR-10-C (clean, per corruption, mCA, drop)",
}


def cifar10c_table(argv: list[str]) -> int:
    """Evaluate each run under the given directories on CIFAR-10-C (``binexp evaluate <run>
    data=cifar10c``, skipped where ``<run>/evaluations/cifar10c.json`` exists unless --again),
    then print the runs side by side, one column per run labelled by what differs between them."""
    from binexp.analysis.report import value_of
    from binexp.analysis.robustness import side_by_side
    from binexp.cli import main as cli
    from binexp.errors import BinexpError
    from binexp.runs.discovery import differing_keys, find_runs

    parser = argparse.ArgumentParser(prog="tables.py cifar10c", description=cifar10c_table.__doc__)
    parser.add_argument("dirs", nargs="+", help="run or sweep directories, then data overrides (data.root=...)")
    parser.add_argument("--again", action="store_true", help="re-evaluate runs that already have cifar10c.json")
    args = parser.parse_args(argv)
    dirs = [d for d in args.dirs if not d.startswith("data")]
    overrides = [d for d in args.dirs if d.startswith("data")]
    try:
        runs = [r for r in find_runs(dirs) if (r.path / "checkpoints" / "last.ckpt").is_file()]
    except BinexpError as e:
        print(f"tables.py: error: {e}", file=sys.stderr)
        return 2
    if not runs:
        print(f"tables.py: error: no run with checkpoints/last.ckpt under {', '.join(dirs)}", file=sys.stderr)
        return 2
    for run in runs:
        if args.again or not (run.path / "evaluations" / "cifar10c.json").is_file():
            code = cli(["evaluate", str(run.path), "data=cifar10c", *overrides])
            if code:
                return code
    by = differing_keys(runs) or ["name"]
    labels = [", ".join(str(value_of(r, k)) for k in by) if by != ["name"] else r.path.name for r in runs]
    if len(set(labels)) < len(labels):  # e.g. seeds of one configuration: one column each, named
        labels = [f"{label}, {r.path.name}" for label, r in zip(labels, runs)]
    records = [json.loads((r.path / "evaluations" / "cifar10c.json").read_text()) for r in runs]
    print(f"\n## {EVALUATIONS['cifar10c']}\n")
    print(side_by_side(records, labels))
    return 0


def row_label(experiment: str) -> str | None:
    """The preset's ``meta.row`` (what the row changes, e.g. "XNOR + R + T"), or None."""
    text = (CONF / f"{experiment}.yaml").read_text(encoding="utf-8")
    found = re.search(r"^  row: *(.+)$", text, re.MULTILINE)
    return found.group(1).strip().strip("\"'") if found else None


def binexp(*args: str) -> list[str]:
    return [sys.executable, "-m", "binexp", *args]


def run_table(name: str, argv: list[str] | None = None) -> int:
    title, experiments, budget = TABLES[name]
    parser = argparse.ArgumentParser(
        prog=f"tables.py {name}", description=f"{title}: runs the sweep, then prints the table. Full scale: {budget}."
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="same sweep on data=synthetic, one short epoch per run (plus the table's SMOKE_EXTRA)",
    )
    parser.add_argument("--out", default=None, help="sweep directory (default outputs/tables/<table>/<time>)")
    parser.add_argument("--format", default="md", choices=("md", "csv", "latex"))
    args, extra = parser.parse_known_args(argv)
    stamp = datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    out = Path(args.out or f"outputs/tables/{name}{'_smoke' if args.smoke else ''}/{stamp}")
    models = MODEL_SWEEPS.get(name, ())
    if any(e.startswith("model=") for e in extra):
        models = ()
    cmd = binexp(
        "train",
        "-m",
        "experiment=" + ",".join(experiments),
        *(["model=" + ",".join(models)] if models else []),
        *([*SMOKE, *SMOKE_EXTRA.get(name, [])] if args.smoke else []),
        *extra,
        f"hydra.sweep.dir={out}",
    )
    print("$", " ".join(cmd[2:]), flush=True)
    train = subprocess.run(cmd)
    extra = SMOKE_EXTRA.get(name, [])
    epochs = "short epochs" if any(o.startswith("trainer.max_epochs=") for o in extra) else "one short epoch"
    smoke = f" (smoke: synthetic data, {epochs}{''.join(', ' + o for o in extra)})"
    print(f"\n## {title}{smoke if args.smoke else ''}\n", flush=True)
    by = "experiment,meta.row" if all(row_label(e) for e in experiments) else "experiment"
    if name in MODEL_SWEEPS:
        by = "experiment,model.name"
    report = subprocess.run(binexp("report", str(out), "--by", by, "--format", args.format))
    return train.returncode or report.returncode


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help", "--list"):
        if not argv or argv[0] != "--list":
            print(USAGE + "\n\ntables:")
        width = max(map(len, TABLES))
        for name, (title, experiments, budget) in TABLES.items():
            runs = len(experiments) * max(1, len(MODEL_SWEEPS.get(name, ())))
            print(f"{name:<{width}}  {title} ({runs} runs, {budget})")
        for name, title in EVALUATIONS.items():
            print(f"{name:<{width}}  {title} (evaluates existing runs)")
        return 0
    name, rest = argv[0], argv[1:]
    if name == "cifar10c":
        return cifar10c_table(rest)
    if name not in TABLES:
        print(f"tables.py: error: unknown table {name!r}; choose one of: {', '.join(TABLES)}", file=sys.stderr)
        return 2
    return run_table(name, rest)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:  # `tables.py --list | head`: the reader has gone, stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)
