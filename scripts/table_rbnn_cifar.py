#!/usr/bin/env python
"""RBNN Table 1: CIFAR-10, W/A 1/1.

    python scripts/table_rbnn_cifar.py            # full scale (needs the dataset; see README)
    python scripts/table_rbnn_cifar.py --smoke    # the same sweep on synthetic data, one short epoch
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tables import run_table  # noqa: E402

if __name__ == "__main__":
    sys.exit(run_table("rbnn_cifar", sys.argv[1:]))
