#!/usr/bin/env python
"""RBNN Table 2: ImageNet ResNet-18 and ResNet-34 (top-1 and top-5 in each preset's meta).

    python scripts/table_rbnn_imagenet.py            # full scale (needs the dataset; see README)
    python scripts/table_rbnn_imagenet.py --smoke    # the same sweep on synthetic data, one short epoch
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tables import run_table  # noqa: E402

if __name__ == "__main__":
    sys.exit(run_table("rbnn_imagenet", sys.argv[1:]))
