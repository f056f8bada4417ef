"""Shared test helpers: run the installed CLI in a subprocess, make CIFAR-format fixtures."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

BIN = Path(sys.executable).parent / "binexp"
REPO = Path(__file__).resolve().parents[1]
# A subprocess that runs longer than this has hung: the limit only stops a hang (an hour, within CI's
# 90 minutes), it never fails a slow or loaded machine (issue 21: the suite gets slower there, not red).
HANG_LIMIT = 3600
# torch's OpenMP threads spin while they wait; on a loaded machine (issue 21: 4 CPU hogs on 2 cores) that
# made a 20-batch epoch take 87.9 s instead of 26.3 s with passive waiting, the same numbers to the last
# digit. Set before any test imports torch; every `binexp` subprocess inherits it. A value you set wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
QUICK = ["trainer.enable_progress_bar=false", "trainer.num_sanity_val_steps=0"]


def cli_command(args: list[str], callbacks: list[tuple[str, dict]] | None = None) -> tuple[list[str], dict]:
    """The command line and the environment entries of ``binexp <args>``; with ``callbacks``
    (``[(class name, kwargs)]``, e.g. ``tests.support.killpoint.KillAt``) the same CLI started
    through the test launcher, which adds them to every run (no config can)."""
    if callbacks is None:
        return [str(BIN), *args], {}
    from tests.support.launch import callbacks_env

    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    return [sys.executable, "-m", "tests.support.launch", *args], {"PYTHONPATH": path, **callbacks_env(*callbacks)}


def run_cli(
    args: list[str],
    cwd: Path,
    timeout: float = HANG_LIMIT,
    env: dict | None = None,
    callbacks: list[tuple[str, dict]] | None = None,
) -> subprocess.CompletedProcess:
    """Run ``binexp <args>`` as a user would, from ``cwd`` (``callbacks``: see :func:`cli_command`)."""
    full_env = dict(os.environ, PYTHONUNBUFFERED="1", HYDRA_FULL_ERROR="0")
    full_env.pop("BINEXP_VERB", None)
    command, extra = cli_command(args, callbacks)
    full_env.update(extra)
    if env:
        full_env.update(env)
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=full_env)


def read_metrics(run_dir: Path) -> dict:
    return json.loads((Path(run_dir) / "metrics.json").read_text())


def write_cifar_fixture(root: Path, per_batch: int = 64, test: int = 64, variant: int = 10, seed: int = 0) -> Path:
    """A CIFAR-format folder (cifar-10-batches-py/ with 5 train batches and a test batch) of
    random images whose labels depend on the mean colour, so it is learnable."""
    rng = np.random.default_rng(seed)
    folder = root / ("cifar-10-batches-py" if variant == 10 else "cifar-100-python")
    folder.mkdir(parents=True, exist_ok=True)
    key = "labels" if variant == 10 else "fine_labels"

    def batch(n):
        labels = rng.integers(0, variant, n)
        base = (labels[:, None] * (255 // variant)).astype(np.int64)
        data = np.clip(base + rng.integers(-20, 20, (n, 3072)), 0, 255).astype(np.uint8)
        return {"data": data, key: labels.tolist(), "batch_label": "fixture"}

    names = [f"data_batch_{i}" for i in range(1, 6)] if variant == 10 else ["train"]
    for name in names:
        with open(folder / name, "wb") as f:
            pickle.dump(batch(per_batch), f)
    with open(folder / ("test_batch" if variant == 10 else "test"), "wb") as f:
        pickle.dump(batch(test), f)
    return root


@pytest.fixture
def cifar_root(tmp_path: Path) -> Path:
    return write_cifar_fixture(tmp_path / "cifar")


def write_cifar10c_fixture(
    root: Path, per_severity: int = 20, corruptions: tuple[str, ...] | None = None, seed: int = 0
) -> Path:
    """A CIFAR-10-C-format folder: ``labels.npy`` (5 x N uint8 labels, the release's layout) and
    per corruption ``<name>.npy``, uint8 (5 x N, 32, 32, 3), severity s in rows N(s-1)..Ns-1. The
    images are the synthetic set's validation images (so a run trained on data=synthetic scores
    above chance) with noise growing with the severity and the corruption's position."""
    from binexp.data.cifar10c import CORRUPTIONS
    from binexp.data.synthetic import make_synthetic

    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    images, labels = make_synthetic(per_severity, 10, 32, 1.0, 1)
    clean = images.permute(0, 2, 3, 1).numpy().astype(np.int64)
    np.save(root / "labels.npy", np.tile(labels.numpy().astype(np.uint8), 5))
    for i, name in enumerate(corruptions or CORRUPTIONS):
        stack = [clean + rng.normal(0, 8 * s * (1 + i / 8), clean.shape) for s in range(1, 6)]
        np.save(root / f"{name}.npy", np.clip(np.concatenate(stack), 0, 255).astype(np.uint8))
    return root


def write_imagefolder_fixture(root: Path, classes: int = 3, per_class: int = 6, size: int = 40, seed: int = 0) -> Path:
    """train/ and val/ folders of small PNGs, one colour family per class."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for split in ("train", "val"):
        for c in range(classes):
            d = root / split / f"class_{c}"
            d.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                base = np.zeros((size, size, 3), dtype=np.int64)
                base[..., c % 3] = 200
                img = np.clip(base + rng.integers(0, 50, (size, size, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(img).save(d / f"{i}.png")
    return root


@pytest.fixture
def imagefolder_root(tmp_path: Path) -> Path:
    return write_imagefolder_fixture(tmp_path / "folder")
