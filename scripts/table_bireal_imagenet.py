#!/usr/bin/env python
"""Bi-Real Net on ImageNet (W/A 1/1).

    python scripts/table_bireal_imagenet.py            # full scale (needs the dataset; see README)
    python scripts/table_bireal_imagenet.py --smoke    # the same sweep on synthetic data, one short epoch
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tables import run_table  # noqa: E402

if __name__ == "__main__":
    sys.exit(run_table("bireal_imagenet", sys.argv[1:]))
