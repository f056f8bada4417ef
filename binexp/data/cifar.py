"""CIFAR-10/100 from the standard python batches, read directly.

torchvision's CIFAR classes refuse files whose MD5 differs from the published archive, which
rules out regenerated or converted CIFAR-format data; we read the pickles ourselves (latin1,
``data`` N x 3072 uint8, ``labels`` / ``fine_labels``) and keep the whole set in memory as one
uint8 tensor. Only read files you trust: they are pickles."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch

from binexp.data.memory import InMemoryDataModule
from binexp.errors import BinexpError

URLS = {
    10: "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
    100: "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
}
LAYOUT = {
    10: ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"], "labels"),
    100: ("cifar-100-python", ["train"], ["test"], "fine_labels"),
}


def cifar_dir(root: str | Path, variant: int) -> Path:
    """The folder holding the batch files: ``root`` itself or ``root/<archive folder>``."""
    folder, train_files, _, _ = LAYOUT[variant]
    root = Path(root).expanduser()
    if (root / train_files[0]).exists():
        return root
    return root / folder


def missing_message(root: str | Path, variant: int) -> str:
    folder = LAYOUT[variant][0]
    return (
        f"CIFAR-{variant} not found under {Path(root).expanduser().resolve()} (looked for {folder}/); "
        f"fix: add data.download=true to fetch it (needs internet), or set data.root=<folder containing {folder}>"
    )


def read_batch(path: Path, label_key: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        with open(path, "rb") as f:
            entry = pickle.load(f, encoding="latin1")
        data = np.asarray(entry["data"], dtype=np.uint8)
        labels = np.asarray(entry[label_key], dtype=np.int64)
        if data.ndim != 2 or data.shape[1] != 3072 or len(data) != len(labels):
            raise ValueError(f"expected data of shape (N, 3072) and N labels, got {data.shape} and {labels.shape}")
    except FileNotFoundError:
        raise
    except Exception as e:  # noqa: BLE001 - any unpickling problem means a corrupt file
        raise BinexpError(
            f"CIFAR batch file {path} is corrupt or not a CIFAR python batch ({type(e).__name__}: {e}); "
            f"fix: delete it and re-download with data.download=true, or point data.root at an intact copy"
        ) from None
    return data.reshape(-1, 3, 32, 32), labels


class CIFARDataModule(InMemoryDataModule):
    def __init__(self, root: str = "data/cifar10", variant: int = 10, download: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        if variant not in LAYOUT:
            raise BinexpError(f"data.variant={variant} is not a CIFAR variant; use 10 or 100")
        self.root = root
        self.variant = variant
        self.download = download
        self.num_classes = variant

    def check(self) -> None:
        """Raise the one-line missing-dataset error (called before anything runs)."""
        if self.download:
            return
        folder, train_files, test_files, _ = LAYOUT[self.variant]
        d = cifar_dir(self.root, self.variant)
        if not all((d / f).exists() for f in train_files + test_files):
            raise BinexpError(missing_message(self.root, self.variant))

    def prepare_data(self) -> None:
        if self.download and not (cifar_dir(self.root, self.variant) / LAYOUT[self.variant][1][0]).exists():
            from torchvision.datasets.utils import download_and_extract_archive

            try:
                download_and_extract_archive(URLS[self.variant], download_root=str(Path(self.root).expanduser()))
            except Exception as e:  # noqa: BLE001
                raise BinexpError(
                    f"could not download CIFAR-{self.variant} to {self.root} ({type(e).__name__}: {e}); "
                    f"fix: download {URLS[self.variant]} by hand, extract it and set data.root to that folder"
                ) from None

    def load(self):
        self.check()
        _, train_files, test_files, key = LAYOUT[self.variant]
        d = cifar_dir(self.root, self.variant)
        parts = [read_batch(d / f, key) for f in train_files]
        xtr = np.concatenate([p[0] for p in parts])
        ytr = np.concatenate([p[1] for p in parts])
        xte, yte = read_batch(d / test_files[0], key)
        if ytr.min() < 0 or ytr.max() >= self.variant:
            raise BinexpError(f"CIFAR labels in {d} fall outside 0..{self.variant - 1}; fix: check data.variant")
        return torch.from_numpy(xtr), torch.from_numpy(ytr), torch.from_numpy(xte), torch.from_numpy(yte)
