#!/usr/bin/env python
"""FleXOR Table 2: per-stage N_in (ResNet-20, N_out = 20) against uniform 0.4 bit.

    python scripts/table_flexor_table2.py            # full scale (needs the dataset; see README)
    python scripts/table_flexor_table2.py --smoke    # the same sweep on synthetic data, one short epoch
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tables import run_table  # noqa: E402

if __name__ == "__main__":
    sys.exit(run_table("flexor_table2", sys.argv[1:]))
