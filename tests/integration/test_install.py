"""The configs ship inside the wheel: a non-editable install runs from any directory."""

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import HANG_LIMIT

REPO = Path(__file__).resolve().parents[2]


def test_wheel_install_finds_configs_from_any_directory(tmp_path):
    wheel_dir, site = tmp_path / "wheel", tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(wheel_dir),
            str(REPO),
        ],
        check=True,
        capture_output=True,
        timeout=HANG_LIMIT,
    )
    wheel = next(wheel_dir.glob("binexp-*.whl"))
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
        check=True,
        capture_output=True,
        timeout=HANG_LIMIT,
    )
    shipped = {p.relative_to(site / "binexp" / "conf") for p in (site / "binexp" / "conf").rglob("*.yaml")}
    assert shipped == {
        p.relative_to(REPO / "conf") for p in (REPO / "conf").rglob("*.yaml")
    }  # every config, every group
    assert (site / "binexp" / "conf" / "quantizer" / "xnor.yaml").is_file()
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = dict(os.environ, PYTHONPATH=str(site))
    env.pop("BINEXP_VERB", None)
    code = "import sys, binexp; from binexp.cli import main; print(binexp.__file__); sys.exit(main(sys.argv[1:]))"
    r = subprocess.run(
        [sys.executable, "-c", code, "train", "--cfg", "job", "quantizer=xnor", "data=synthetic"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=HANG_LIMIT,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.splitlines()[0].startswith(str(site))  # the wheel's copy, not the checkout
    assert "name: xnor" in r.stdout and "kind: synthetic" in r.stdout
    r = subprocess.run(
        [
            sys.executable,
            "-c",
            code,
            "train",
            "data=synthetic",
            "trainer.max_epochs=1",
            "trainer.limit_train_batches=1",
            "trainer.limit_val_batches=1",
            "trainer.enable_progress_bar=false",
            "hydra.run.dir=run",
        ],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=HANG_LIMIT,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert (work / "run" / "metrics.json").is_file()
