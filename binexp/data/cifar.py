"""CIFAR-10/100 from the standard python batches, read directly.

torchvision's CIFAR classes refuse files whose MD5 differs from the published archive, which
rules out regenerated or converted CIFAR-format data; we read the pickles ourselves (latin1,
``data`` N x 3072 uint8, ``labels`` / ``fine_labels``) and keep the whole set in memory as one
uint8 tensor. The batches are pickles, read with a restricted unpickler (:class:`BatchUnpickler`)
that builds only containers, strings, bytes and numpy arrays: a batch file cannot run code.
Keys may be str or bytes (``pickle.load(..., encoding="bytes")`` writes b"data"); a folder whose
``batches.meta`` (``meta`` for CIFAR-100) names N classes is read as N classes."""

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


# the only globals a CIFAR batch needs: numpy's ndarray reconstruction (numpy 1.x and 2.x module
# names, pickle protocols 2-5) and, for bytes written at protocol 2, _codecs.encode
ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
}


class BatchUnpickler(pickle.Unpickler):
    """Unpickles builtin containers, str/bytes, numbers and numpy arrays; any other global
    (``os.system``, ``builtins.eval``, ...) is refused before it is looked up."""

    def find_class(self, module: str, name: str):
        if (module, name) in ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(
            f"refused global {module}.{name} (a CIFAR batch holds only arrays, lists and strings)"
        )


def _str_keys(entry) -> dict:
    if not isinstance(entry, dict):
        raise TypeError(f"expected a dict, got {type(entry).__name__}")
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in entry.items()}


def load_pickle(path: Path) -> dict:
    with open(path, "rb") as f:
        return _str_keys(BatchUnpickler(f, encoding="latin1").load())


def _corrupt(path: Path, e: Exception) -> BinexpError:
    if isinstance(e, pickle.UnpicklingError) and "refused global" in str(e):
        return BinexpError(
            f"CIFAR batch file {path} is not plain data ({e}; nothing was run); "
            f"fix: use CIFAR batches from a source you trust (data.download=true fetches the originals)"
        )
    return BinexpError(
        f"CIFAR batch file {path} is corrupt or not a CIFAR python batch ({type(e).__name__}: {e}); "
        f"fix: delete it and re-download with data.download=true, or point data.root at an intact copy"
    )


def read_batch(path: Path, label_key: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        entry = load_pickle(path)
        data = np.asarray(entry["data"], dtype=np.uint8)
        labels = np.asarray(entry[label_key], dtype=np.int64)
        if data.ndim != 2 or data.shape[1] != 3072 or len(data) != len(labels):
            raise ValueError(f"expected data of shape (N, 3072) and N labels, got {data.shape} and {labels.shape}")
    except FileNotFoundError:
        raise
    except Exception as e:  # noqa: BLE001 - any unpickling problem means a corrupt file
        raise _corrupt(path, e) from None
    return data.reshape(-1, 3, 32, 32), labels


META = {10: ("batches.meta", "label_names"), 100: ("meta", "fine_label_names")}


def meta_classes(folder: Path, variant: int) -> int | None:
    """The number of classes ``batches.meta`` (``meta``) names, or None without a meta file."""
    name, key = META[variant]
    path = folder / name
    if not path.is_file():
        return None
    try:
        names = load_pickle(path)[key]
        if not isinstance(names, (list, tuple)) or not names:
            raise ValueError(f"{key} is not a non-empty list")
    except Exception as e:  # noqa: BLE001
        raise _corrupt(path, e) from None
    return len(names)


class CIFARDataModule(InMemoryDataModule):
    def __init__(self, root: str = "data/cifar10", variant: int = 10, download: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        if variant not in LAYOUT:
            raise BinexpError(f"data.variant={variant} is not a CIFAR variant; use 10 or 100")
        self.root = root
        self.variant = variant
        self.download = download
        # a CIFAR-format folder with its own classes: as many as its meta file names
        self.num_classes = meta_classes(cifar_dir(root, variant), variant) or variant

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
        if len(ytr) == 0 or len(yte) == 0:
            raise BinexpError(
                f"CIFAR batches in {d} hold {len(ytr)} training and {len(yte)} test images; fix: re-download "
                f"them, or point data.root at an intact copy"
            )
        if ytr.min() < 0 or ytr.max() >= self.num_classes or yte.min() < 0 or yte.max() >= self.num_classes:
            raise BinexpError(
                f"CIFAR labels in {d} fall outside 0..{self.num_classes - 1}; fix: check data.variant "
                f"(and the class names in its meta file)"
            )
        return torch.from_numpy(xtr), torch.from_numpy(ytr), torch.from_numpy(xte), torch.from_numpy(yte)
