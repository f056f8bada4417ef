#!/usr/bin/env python
"""Angular bias after one-stage and two-stage training (RBNN reviewer 3; RBNN arXiv 2009.13055,
Real-to-Binary arXiv 2003.11535): four CIFAR-10 ResNet-20 runs, then one table.

    python scripts/angular_bias_two_stage.py --smoke     # synthetic data, one short epoch per run
    python scripts/angular_bias_two_stage.py             # full scale (CIFAR-10; see README)
    python scripts/angular_bias_two_stage.py data.root=/datasets/cifar10 seed=1

Runs: ``one_stage`` (experiment=rbnn_cifar_resnet20), ``stage1`` (two_stage_rbnn_cifar_stage1:
real weights, binary activations), ``two_stage`` (two_stage_rbnn_cifar_stage2, init_from stage 1)
and ``two_stage_at`` (the same plus KL on logits and attention transfer from stage 1,
``distill.attention_weight``; ``--attention-weight 0`` leaves it out). The table gives, per run,
the best top-1, and the mean over binarized layers of the final weight angular bias, the
angle(w, sign w) in degrees (``angular_bias_final_mean``), and of the activation angular bias angle(a, sign a)
on the fixed validation batch (``act_angular_bias_mean``), both from each run's metrics.json.
Other arguments go to every ``binexp train`` unchanged."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tables import SMOKE, binexp  # noqa: E402


def runs(out: Path, attention_weight: float) -> list[tuple[str, list[str]]]:
    stage1 = out / "stage1"
    plan = [
        ("one_stage", ["experiment=rbnn_cifar_resnet20"]),
        ("stage1", ["experiment=two_stage_rbnn_cifar_stage1"]),
        ("two_stage", ["experiment=two_stage_rbnn_cifar_stage2", f"init_from={stage1}"]),
    ]
    if attention_weight > 0:
        plan.append(
            (
                "two_stage_at",
                [
                    "experiment=two_stage_rbnn_cifar_stage2",
                    f"init_from={stage1}",
                    f"distill.teacher={stage1}",
                    f"distill.attention_weight={attention_weight}",
                ],
            )
        )
    return plan


def _fmt(value, digits: int = 4) -> str:
    return "–" if not isinstance(value, (int, float)) else f"{value:.{digits}f}"


def table(out: Path, names: list[str]) -> str:
    lines = [
        (
            "| run | weights / activations | best top-1 (%) | weight angular bias (°, mean over layers) "
            "| activation angular bias (°, mean over layers) |"
        ),
        "|---|---|---|---|---|",
    ]
    for name in names:
        m = json.loads((out / name / "metrics.json").read_text())
        wa = "real / binary" if name == "stage1" else "binary / binary"
        lines.append(
            f"| {name} | {wa} | {_fmt(m.get('best_val_acc1'), 2)} | {_fmt(m.get('angular_bias_final_mean'), 2)} | "
            f"{_fmt(m.get('act_angular_bias_mean'), 2)} |"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--smoke", action="store_true", help="synthetic data, one short epoch per run")
    p.add_argument("--out", default=None, help="folder for the runs (default outputs/angular_bias_two_stage/<time>)")
    p.add_argument(
        "--attention-weight",
        type=float,
        default=1.0,
        help="distill.attention_weight of the two_stage_at run (0: no such run)",
    )
    args, extra = p.parse_known_args(argv)
    out = Path(args.out or f"outputs/angular_bias_two_stage/{datetime.now().strftime('%Y-%m-%d_%H-%M-%S')}")
    common = (SMOKE if args.smoke else []) + extra
    plan = runs(out, args.attention_weight)
    for name, overrides in plan:
        cmd = binexp("train", *overrides, *common, f"hydra.run.dir={out / name}")
        print("$", " ".join(cmd[2:]), flush=True)
        rc = subprocess.run(cmd).returncode
        if rc:
            return rc
    print(
        "\n## Angular bias after one- and two-stage training"
        f"{' (smoke: synthetic data, one short epoch)' if args.smoke else ''}\n"
    )
    print(table(out, [name for name, _ in plan]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
