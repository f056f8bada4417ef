#!/usr/bin/env python
"""FleXOR Fig. 6: the S_tanh sweep (ResNet-32, 0.8 bit, N_out = 10).

    python scripts/table_flexor_fig6.py            # full scale (needs the dataset; see README)
    python scripts/table_flexor_fig6.py --smoke    # the same sweep on synthetic data, one short epoch
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tables import run_table  # noqa: E402

if __name__ == "__main__":
    sys.exit(run_table("flexor_fig6", sys.argv[1:]))
