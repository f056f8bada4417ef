#!/usr/bin/env python
"""FleXOR reviewers' question (R3): slices straddling filters, flatten=tf / torch / filter.

    python scripts/table_flexor_flatten.py            # full scale (needs the dataset; see README)
    python scripts/table_flexor_flatten.py --smoke    # the same sweep on synthetic data, one short epoch
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tables import run_table  # noqa: E402

if __name__ == "__main__":
    sys.exit(run_table("flexor_flatten", sys.argv[1:]))
