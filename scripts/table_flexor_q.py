#!/usr/bin/env python
"""FleXOR reviewers' question (R3): q = 1, 2, 3 bit planes at N_in = 8, N_out = 20.

    python scripts/table_flexor_q.py            # full scale (needs the dataset; see README)
    python scripts/table_flexor_q.py --smoke    # the same sweep on synthetic data, one short epoch
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tables import run_table  # noqa: E402

if __name__ == "__main__":
    sys.exit(run_table("flexor_q", sys.argv[1:]))
