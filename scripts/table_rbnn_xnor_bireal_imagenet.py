#!/usr/bin/env python
"""RBNN reviewer 3's layout on ImageNet ResNet-18: XNOR / Bi-Real / Bi-Real + RBNN.

    python scripts/table_rbnn_xnor_bireal_imagenet.py            # full scale (needs the dataset; see README)
    python scripts/table_rbnn_xnor_bireal_imagenet.py --smoke    # the same sweep on synthetic data, one short epoch
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tables import run_table  # noqa: E402

if __name__ == "__main__":
    sys.exit(run_table("rbnn_xnor_bireal_imagenet", sys.argv[1:]))
