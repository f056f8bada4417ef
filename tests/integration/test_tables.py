"""Every table script runs at smoke scale and prints its table with the paper's numbers."""

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))
from tables import TABLES  # noqa: E402


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(TABLES))
def test_table_script_smoke(name, tmp_path):
    out = tmp_path / "sweep"
    r = subprocess.run([sys.executable, str(REPO / "scripts" / f"table_{name}.py"), "--smoke", "--out", str(out)],
                       cwd=tmp_path, capture_output=True, text=True, timeout=1200)
    assert r.returncode == 0, r.stderr[-3000:]
    experiments = TABLES[name][1]
    rows = [line for line in r.stdout.splitlines() if line.startswith("| ") and not line.startswith("| experiment")]
    assert sorted(row.split("|")[1].strip() for row in rows) == sorted(experiments)
    assert all(row.rstrip(" |").endswith("completed") for row in rows), rows
    header = next(line for line in r.stdout.splitlines() if line.startswith("| experiment"))
    if any("paper_value" in (REPO / "conf" / "experiment" / f"{e}.yaml").read_text() for e in experiments):
        assert "| paper | Δ |" in header
