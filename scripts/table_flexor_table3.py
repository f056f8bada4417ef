#!/usr/bin/env python
"""FleXOR Table 3: ResNet-18 on ImageNet, top-1 and top-5 beside the paper's.

    python scripts/table_flexor_table3.py            # full scale (needs the dataset; see README)
    python scripts/table_flexor_table3.py --smoke    # the same sweep on synthetic data, one short epoch
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tables import run_table  # noqa: E402

if __name__ == "__main__":
    sys.exit(run_table("flexor_table3", sys.argv[1:]))
