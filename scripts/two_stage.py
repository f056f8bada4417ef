#!/usr/bin/env python
"""Two-stage training with one command: stage 1 (binary activations, real weights), then
stage 2 (fully binary) initialised from stage 1's weights, then the report of both.

    python scripts/two_stage.py                      # experiment=two_stage_stage1 / _stage2 (ImageNet)
    python scripts/two_stage.py --smoke              # synthetic data, one short epoch per stage
    python scripts/two_stage.py data.root=/datasets/imagenet trainer=ddp
    python scripts/two_stage.py --stage1 two_stage_stage1 --stage2 two_stage_stage2 distill.teacher=<fp run>

Other arguments go to both stages' ``binexp train`` unchanged."""

import argparse
import subprocess
import sys
from datetime import datetime
from pathlib import Path

from tables import SMOKE, binexp  # scripts/tables.py (this script's folder is on sys.path)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--stage1", default="two_stage_stage1", help="experiment preset of stage 1")
    p.add_argument("--stage2", default="two_stage_stage2", help="experiment preset of stage 2")
    p.add_argument("--smoke", action="store_true")
    p.add_argument("--out", default=None, help="folder for the two runs (default outputs/two_stage/<time>)")
    args, extra = p.parse_known_args(argv)
    out = Path(args.out or f"outputs/two_stage/{datetime.now().strftime('%Y-%m-%d_%H-%M-%S')}")
    common = (SMOKE if args.smoke else []) + extra
    stage1, stage2 = out / "stage1", out / "stage2"
    for cmd in (
        binexp("train", f"experiment={args.stage1}", *common, f"hydra.run.dir={stage1}"),
        binexp("train", f"experiment={args.stage2}", f"init_from={stage1}", *common, f"hydra.run.dir={stage2}"),
    ):
        print("$", " ".join(cmd[2:]), flush=True)
        rc = subprocess.run(cmd).returncode
        if rc:
            return rc
    return subprocess.run(binexp("report", str(out), "--by", "experiment")).returncode


if __name__ == "__main__":
    sys.exit(main())
