#!/usr/bin/env python
"""FleXOR Fig. 4: LeNet-5 on MNIST (needs MNIST's IDX files: data.root=... or data.download=true).

    python scripts/table_flexor_fig4.py            # full scale (needs the dataset; see README)
    python scripts/table_flexor_fig4.py --smoke    # the same sweep on synthetic data, one short epoch
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tables import run_table  # noqa: E402

if __name__ == "__main__":
    sys.exit(run_table("flexor_fig4", sys.argv[1:]))
