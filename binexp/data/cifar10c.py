"""CIFAR-10-C (Hendrycks & Dietterich, "Benchmarking Neural Network Robustness to Common
Corruptions and Perturbations", arXiv:1903.12261), the corruption-robustness set of BiBench's
robustness track: an evaluation-only dataset.

The release (Zenodo record 2535967, ``CIFAR-10-C.tar``) is one folder of numpy files: per
corruption ``<name>.npy``, uint8 (50000, 32, 32, 3) = the 10000 CIFAR-10 test images at severity
1, then 2, ... 5 (severity s = rows 10000(s-1) .. 10000 s - 1), and one ``labels.npy`` with the
labels of those rows (50000, the test labels five times; a file with one label per image of a
severity is read too). Files are untrusted: ``np.load(allow_pickle=False)`` (an object array is
refused, no code runs), no symlink followed (``O_NOFOLLOW``), and each file's size is checked
against what its shape needs before it is read (a file is at most :data:`MAX_BYTES`).

One (corruption, severity) is held in memory at a time (:meth:`CIFAR10CDataModule.select`);
``binexp evaluate <run> data=cifar10c`` walks every pair (:func:`binexp.commands.evaluate`)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from binexp.data.memory import InMemoryDataModule, TensorImages
from binexp.errors import BinexpError

# the 15 corruptions of the benchmark (mean corruption accuracy is over these) ...
CORRUPTIONS = (
    "gaussian_noise",
    "shot_noise",
    "impulse_noise",
    "defocus_blur",
    "glass_blur",
    "motion_blur",
    "zoom_blur",
    "snow",
    "frost",
    "fog",
    "brightness",
    "contrast",
    "elastic_transform",
    "pixelate",
    "jpeg_compression",
)
# ... and the 4 held-out extras of the release (data.corruptions=[...] adds them)
EXTRA_CORRUPTIONS = ("speckle_noise", "gaussian_blur", "spatter", "saturate")
SEVERITIES = (1, 2, 3, 4, 5)
SOURCE = "CIFAR-10-C.tar from Zenodo record 2535967 (Hendrycks & Dietterich, arXiv:1903.12261)"
MAX_BYTES = 50000 * 32 * 32 * 3 + 4096  # the release's image files, header included
EVALUATION_ONLY = (
    "data=cifar10c is an evaluation set (no training split); fix: train on data=cifar10, then "
    "binexp evaluate <run dir> data=cifar10c"
)


def missing_message(root: str | Path, what: str) -> str:
    return (
        f"CIFAR-10-C not found: no {what} in {Path(root).expanduser().resolve()}; fix: download {SOURCE}, "
        f"extract it and pass data.root=<the CIFAR-10-C folder holding labels.npy and <corruption>.npy>"
    )


def read_npy(path: Path, root: str | Path, kinds: str, max_bytes: int = MAX_BYTES) -> np.ndarray:
    """One ``.npy`` file, read safely: no symlink, at most ``max_bytes``, no pickled objects, a
    dtype of one of the numpy ``kinds`` ("u": unsigned, "i": signed integers); every problem is
    one :class:`BinexpError` line."""
    if path.is_symlink():
        raise BinexpError(f"CIFAR-10-C file {path} is a symbolic link (not followed); fix: copy the real file there")
    if not path.is_file():
        raise BinexpError(missing_message(root, path.name))
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError as e:
        raise BinexpError(
            f"CIFAR-10-C file {path} cannot be opened ({e.strerror}); fix: check its permissions"
        ) from None
    with os.fdopen(fd, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size > max_bytes:
            raise BinexpError(
                f"CIFAR-10-C file {path} is {size} bytes, more than the {max_bytes} a release file holds; "
                f"fix: replace it with the file from {SOURCE}"
            )
        try:
            array = np.load(f, allow_pickle=False)
        except Exception as e:  # noqa: BLE001 - a truncated file, an object array, not a .npy at all
            raise BinexpError(
                f"CIFAR-10-C file {path} is not a plain numpy array ({type(e).__name__}: {str(e).splitlines()[0]}); "
                f"fix: replace it with the file from {SOURCE}"
            ) from None
    if not isinstance(array, np.ndarray) or array.dtype.kind not in kinds or (kinds == "u" and array.itemsize != 1):
        expected = "uint8" if kinds == "u" else "integers"
        raise BinexpError(
            f"CIFAR-10-C file {path} holds {getattr(array, 'dtype', type(array).__name__)}, expected {expected}; "
            f"fix: replace it with the file from {SOURCE}"
        )
    return array


class CIFAR10CDataModule(InMemoryDataModule):
    """Evaluation only: :meth:`select` puts one (corruption, severity) in ``val_set``; the test
    loader, normalisation and device handling are :class:`InMemoryDataModule`'s."""

    num_classes = 10

    def __init__(
        self,
        root: str = "data/CIFAR-10-C",
        corruptions: tuple[str, ...] = CORRUPTIONS,
        severities: tuple[int, ...] = SEVERITIES,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.root = root
        self.corruptions = tuple(corruptions)
        self.severities = tuple(severities)
        self._labels: np.ndarray | None = None
        self._images: tuple[str, np.ndarray] | None = None

    def _path(self, name: str) -> Path:
        return Path(self.root).expanduser() / name

    def check(self) -> None:
        """What ``binexp train`` calls before anything runs: this set has no training split."""
        raise BinexpError(EVALUATION_ONLY)

    def check_release(self) -> None:
        """What ``binexp evaluate`` calls: one line naming the first missing file (and where the
        release comes from)."""
        root = Path(self.root).expanduser()
        if not root.is_dir():
            raise BinexpError(missing_message(self.root, "folder"))
        for name in ("labels", *self.corruptions):
            if not self._path(f"{name}.npy").exists() and not self._path(f"{name}.npy").is_symlink():
                raise BinexpError(missing_message(self.root, f"{name}.npy"))

    def labels(self) -> np.ndarray:
        if self._labels is None:
            labels = read_npy(self._path("labels.npy"), self.root, "iu", max_bytes=50000 * 8 + 4096)
            if labels.ndim != 1:
                raise BinexpError(
                    f"CIFAR-10-C labels.npy has shape {labels.shape}, expected one label per image; "
                    f"fix: replace it with the file from {SOURCE}"
                )
            self._labels = labels.astype(np.int64)
        return self._labels

    def images(self, corruption: str) -> np.ndarray:
        if self._images is None or self._images[0] != corruption:
            self._images = None  # one corruption in memory at a time
            x = read_npy(self._path(f"{corruption}.npy"), self.root, "u")
            if x.ndim != 4 or x.shape[1:] != (32, 32, 3) or len(x) % 5:
                raise BinexpError(
                    f"CIFAR-10-C file {self._path(f'{corruption}.npy')} has shape {x.shape}, expected "
                    f"(5 x N, 32, 32, 3) (five severities of N images); fix: replace it with the file from {SOURCE}"
                )
            self._images = (corruption, x)
        return self._images[1]

    def subset(self, corruption: str, severity: int) -> TensorImages:
        x = self.images(corruption)
        n = len(x) // 5
        labels = self.labels()
        if len(labels) not in (n, 5 * n):
            raise BinexpError(
                f"CIFAR-10-C labels.npy has {len(labels)} labels but {corruption}.npy has {len(x)} images "
                f"({n} per severity); fix: use labels.npy and {corruption}.npy from the same release"
            )
        rows = slice(n * (severity - 1), n * severity)
        y = labels[rows] if len(labels) == 5 * n else labels
        if y.min() < 0 or y.max() >= self.num_classes:
            raise BinexpError(f"CIFAR-10-C labels.npy has labels outside 0..9; fix: use the file from {SOURCE}")
        images = torch.from_numpy(np.ascontiguousarray(x[rows].transpose(0, 3, 1, 2)))
        return TensorImages(images, torch.from_numpy(np.ascontiguousarray(y)))

    def select(self, corruption: str, severity: int) -> None:
        """Evaluate (corruption, severity) next: it becomes ``val_set`` (and the test set)."""
        self.val_set = self.subset(corruption, severity)

    def pairs(self) -> Iterator[tuple[str, int]]:
        for corruption in self.corruptions:
            for severity in self.severities:
                yield corruption, severity

    def setup(self, stage: str | None = None) -> None:
        if stage in ("fit", None) or self.val_set is None:
            raise BinexpError(EVALUATION_ONLY)
        device = self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")
        if self.resident_on_device and device.type != "cpu":
            self.val_set.to(device)

    def load(self):
        raise BinexpError(EVALUATION_ONLY)
