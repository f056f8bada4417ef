#!/usr/bin/env python
"""FleXOR Table 1: CIFAR-10, N_out = 20, 0.4-1.0 bits/weight.

    python scripts/table_flexor_table1.py            # full scale (needs the dataset; see README)
    python scripts/table_flexor_table1.py --smoke    # the same sweep on synthetic data, one short epoch
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tables import run_table  # noqa: E402

if __name__ == "__main__":
    sys.exit(run_table("flexor_table1", sys.argv[1:]))
