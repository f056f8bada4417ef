"""MNIST from the standard IDX files, read by binexp itself (numpy ``frombuffer``, no pickle).

Files: ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``,
``t10k-labels-idx1-ubyte``, each optionally gzipped (``.gz``), in ``root`` or ``root/MNIST/raw``
(torchvision's layout). IDX format: big-endian header ``0x00 0x00 <type> <ndim>``, then ndim
uint32 sizes, then the data; MNIST uses type 0x08 (uint8), 3 dims for images (N, 28, 28) and 1
for labels (N,). The whole set is held in memory as one uint8 tensor (N, 1, 28, 28)."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import torch

from binexp.data.augment import normalize_uint8, random_crop_flip
from binexp.data.memory import InMemoryDataModule
from binexp.errors import BinexpError

FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
# torchvision's MNIST mirrors (the same files under each)
MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/")
MEAN, STD = (0.1307,), (0.3081,)


def parse_idx(data: bytes, what: str = "IDX data") -> np.ndarray:
    """The array stored in IDX bytes (only the uint8 type, 0x08, which MNIST uses)."""
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ValueError(f"{what}: not an IDX file (bad magic)")
    if data[2] != 0x08:
        raise ValueError(f"{what}: IDX type 0x{data[2]:02x} is not uint8 (0x08)")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{what}: truncated IDX header")
    shape = tuple(int(x) for x in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    count = int(np.prod(shape)) if shape else 0
    if len(data) != header + count:
        raise ValueError(f"{what}: {len(data) - header} data bytes for shape {shape} (expected {count})")
    return np.frombuffer(data, dtype=np.uint8, count=count, offset=header).reshape(shape)


def find_file(root: Path, stem: str) -> Path | None:
    for folder in (root, root / "MNIST" / "raw"):
        for name in (stem, stem + ".gz"):
            if (folder / name).is_file():
                return folder / name
    return None


# the largest MNIST-format file (60 000 images of 28x28 bytes + its header), with room for
# same-format sets of a few times that size; a .gz is inflated in chunks up to this, never further
MAX_IDX_BYTES = 256 * 2**20


def _read_bounded(path: Path) -> bytes:
    from binexp.safeio import read_bytes

    raw = read_bytes(path, MAX_IDX_BYTES, f"MNIST file {path}")  # a regular file, not a link to /dev/zero
    if path.suffix != ".gz":
        return raw
    import io

    chunks, total = [], 0
    with gzip.GzipFile(fileobj=io.BytesIO(raw)) as f:
        while chunk := f.read(1 << 20):
            total += len(chunk)
            if total > MAX_IDX_BYTES:
                raise ValueError(f"inflates to more than {MAX_IDX_BYTES:,} bytes, far beyond any MNIST file")
            chunks.append(chunk)
    return b"".join(chunks)


def read_idx(path: Path) -> np.ndarray:
    try:
        return parse_idx(_read_bounded(path), path.name)
    except (OSError, ValueError, EOFError) as e:
        raise BinexpError(
            f"MNIST file {path} is corrupt ({e}); fix: delete it and re-download with "
            f"data.download=true, or point data.root at an intact copy"
        ) from None


def missing_message(root: str | Path) -> str:
    return (
        f"MNIST not found under {Path(root).expanduser().resolve()} (looked for {FILES['train_images']}[.gz] and the "
        f"other three IDX files, there and in MNIST/raw/); fix: add data.download=true to fetch it (needs internet), "
        f"or set data.root=<folder containing the IDX files>"
    )


class MNISTDataModule(InMemoryDataModule):
    """MNIST, 60k training and 10k test images, 1 x 28 x 28 uint8, normalised with MNIST's
    mean/std (``normalize=half``: 0.5/0.5); augmentation (off by default) is a random crop with
    padding, no flip."""

    num_classes = 10

    def __init__(self, root: str = "data/mnist", download: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        self.root = Path(root).expanduser()
        self.download = download

    def _paths(self) -> dict[str, Path | None]:
        return {k: find_file(self.root, stem) for k, stem in FILES.items()}

    def check(self) -> None:
        """Raise the one-line missing-dataset error (called before anything runs)."""
        paths = self._paths()
        if not self.download and not all(paths.values()):
            raise BinexpError(missing_message(self.root))
        for split in ("train", "test"):  # the label files are small: an empty set stops here, before any run
            labels = paths.get(f"{split}_labels")
            if labels is not None and len(read_idx(labels)) == 0:
                raise BinexpError(
                    f"MNIST {split} files hold 0 images ({labels}); fix: re-download them (data.download=true) "
                    f"or point data.root at an intact copy"
                )

    def prepare_data(self) -> None:
        if not self.download or all(self._paths().values()):
            return
        from torchvision.datasets.utils import download_url

        self.root.mkdir(parents=True, exist_ok=True)
        for stem in FILES.values():
            if find_file(self.root, stem):
                continue
            errors = []
            for mirror in MIRRORS:
                try:
                    download_url(mirror + stem + ".gz", str(self.root), filename=stem + ".gz")
                    break
                except Exception as e:  # noqa: BLE001 - try the next mirror
                    errors.append(f"{type(e).__name__}: {e}")
            else:
                raise BinexpError(
                    f"could not download MNIST's {stem}.gz to {self.root} ({errors[-1]}); fix: download "
                    f"it by hand from {MIRRORS[0]} and set data.root to that folder"
                )

    def load(self):
        self.check()
        paths = self._paths()
        if not all(paths.values()):  # download=true, but prepare_data() did not fetch them
            raise BinexpError(missing_message(self.root))
        arrays = {k: read_idx(p) for k, p in paths.items() if p is not None}
        for split in ("train", "test"):
            x, y = arrays[f"{split}_images"], arrays[f"{split}_labels"]
            if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
                raise BinexpError(
                    f"MNIST {split} files disagree: images {x.shape}, labels {y.shape}; fix: re-download them"
                )
            if len(y) == 0:
                raise BinexpError(
                    f"MNIST {split} files hold 0 images; fix: re-download them (data.download=true) or point "
                    f"data.root at an intact copy"
                )
            if y.size and y.max() > 9:
                raise BinexpError(f"MNIST {split} labels fall outside 0..9; fix: re-download them")
        out = []
        for split in ("train", "test"):
            out.append(torch.from_numpy(arrays[f"{split}_images"].copy()).unsqueeze(1))  # (N, 1, 28, 28) uint8
            out.append(torch.from_numpy(arrays[f"{split}_labels"].astype(np.int64)))
        return tuple(out)

    def transform_batch(self, batch, train: bool, generator: torch.Generator | None = None):
        images, labels = batch
        if train and self.augment:  # the crop drawn from (seed, epoch, batch), as for CIFAR (exact resume)
            images = random_crop_flip(images, pad=self.crop_padding, flip=False, generator=generator)
        if self.normalize == "half":
            return normalize_uint8(images, (0.5,), (0.5,)), labels
        return normalize_uint8(images, MEAN, STD), labels
