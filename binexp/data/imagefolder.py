"""ImageNet or any ``train/`` + ``val/`` class-folder tree, through torchvision.

``decode=pil`` (default): torchvision's ImageFolder with PIL transforms in loader workers.
``decode=tensor``: workers only read the file bytes; JPEGs are decoded in batches on the
training device (nvJPEG on a GPU, libjpeg on a CPU) and cropped, flipped, resized and
normalised there as tensor ops, which takes decoding off the CPU workers when training on a GPU."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from torch.utils.data import DataLoader, Dataset

from binexp.data.augment import IMAGENET_MEAN, IMAGENET_STD
from binexp.data.base import ClassifierData
from binexp.errors import BinexpError

if TYPE_CHECKING:
    from binexp.data.seeding import ResumableDataLoader

# the extensions torchvision's ImageFolder loads (torchvision.datasets.folder.IMG_EXTENSIONS)
IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


def _has_image(folder: Path) -> bool:
    """At least one image file anywhere under ``folder`` (ImageFolder walks subfolders); stops
    at the first one, so a full ImageNet class costs one directory read."""
    import os

    for _, _, files in os.walk(folder, followlinks=False):  # a `-> .` link would loop forever
        if any(f.lower().endswith(IMG_EXTENSIONS) for f in files):
            return True
    return False


def image_files(directory: str, class_to_idx: dict[str, int]) -> list[tuple[str, int]]:
    """(path, class index) of every image under each class folder, as torchvision's ImageFolder
    lists them, except that folder links are not followed (a `-> .` link loops forever) and a
    file link counts only if it ends at a regular file (not /dev/zero or a FIFO)."""
    import os
    import stat

    out = []
    for name, index in sorted(class_to_idx.items()):
        for folder, _, files in sorted(os.walk(os.path.join(directory, name), followlinks=False)):
            for f in sorted(files):
                path = os.path.join(folder, f)
                if not f.lower().endswith(IMG_EXTENSIONS):
                    continue
                try:
                    if stat.S_ISREG(os.stat(path).st_mode):
                        out.append((path, index))
                except OSError:  # a dangling link
                    continue
    return out


def read_image(path: str):
    """PIL's RGB image of ``path``, or a one-line error naming the file (truncated, not an image,
    or over PIL's decompression-bomb limit, which stays on)."""
    from PIL import Image

    try:
        with open(path, "rb") as f:
            img = Image.open(f)
            return img.convert("RGB")
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise BinexpError(
            f"image {path} cannot be read ({str(e).splitlines()[0] if str(e) else type(e).__name__}); "
            f"fix: replace or remove it"
        ) from None


def _image_folder(root: Path, **kwargs):
    """torchvision's ImageFolder listing files with :func:`image_files` and reading them with
    :func:`read_image` (unless ``loader`` is given)."""
    from torchvision import datasets

    class SafeImageFolder(datasets.ImageFolder):
        @staticmethod
        def make_dataset(directory, class_to_idx, extensions=None, is_valid_file=None, allow_empty=False):
            return image_files(str(directory), class_to_idx)

    kwargs.setdefault("loader", read_image)
    return SafeImageFolder(str(root), **kwargs)


class ImageFolderDataModule(ClassifierData):
    """Train: RandomResizedCrop(image_size, scale) + horizontal flip. Val: resize the short side
    to image_size/crop_ratio, center-crop image_size. ImageNet mean/std normalisation."""

    def __init__(
        self,
        root: str = "data/imagenet",
        image_size: int = 224,
        crop_ratio: float = 0.875,
        scale: tuple[float, float] = (0.08, 1.0),
        batch_size: int = 256,
        eval_batch_size: int = 256,
        num_workers: int = 4,
        num_classes: int | None = None,
        name: str = "imagefolder",
        decode: str = "pil",
    ) -> None:
        super().__init__()
        self.root = root
        self.image_size, self.crop_ratio = image_size, crop_ratio
        self.scale: tuple[float, float] = (float(scale[0]), float(scale[1]))
        self.batch_size, self.eval_batch_size, self.num_workers = batch_size, eval_batch_size, num_workers
        self.name = name
        self.decode = decode
        self.expected_classes = num_classes
        self.num_classes = num_classes or len(self._classes("train"))
        self.train_set: Dataset | None = None
        self.val_set: Dataset | None = None
        self.run_seed: int | None = None  # set by build_datamodule(seed=...)
        self._train_loader: ResumableDataLoader | None = None

    def _classes(self, split: str) -> list[str]:
        d = Path(self.root).expanduser() / split
        if not d.is_dir():
            raise BinexpError(
                f"{self.name}: no {split}/ folder under {Path(self.root).expanduser().resolve()}; "
                f"fix: set data.root=<folder with train/ and val/ class subfolders>"
            )
        classes = sorted(p.name for p in d.iterdir() if p.is_dir())
        if not classes:
            raise BinexpError(f"{self.name}: {d} holds no class subfolders; fix: use one subfolder of images per class")
        return classes

    def check(self) -> None:
        train, val = self._classes("train"), self._classes("val")
        if train != val:
            raise BinexpError(
                f"{self.name}: train/ and val/ under {self.root} have different class folders; fix: make them match"
            )
        if self.expected_classes is not None and len(train) != self.expected_classes:
            raise BinexpError(
                f"{self.name}: found {len(train)} classes under {self.root}/train "
                f"but data.num_classes={self.expected_classes}; "
                f"fix: set data.num_classes={len(train)} or point data.root at the right folder"
            )
        root = Path(self.root).expanduser()
        for split, classes in (("train", train), ("val", val)):
            for c in classes:
                if not _has_image(root / split / c):
                    raise BinexpError(
                        f"{self.name}: {root / split / c} holds no image files ({', '.join(IMG_EXTENSIONS)}); "
                        f"fix: put the class's images there or remove the folder from train/ and val/"
                    )

    def setup(self, stage: str | None = None) -> None:
        from torchvision import transforms

        self.check()
        norm = transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)
        train_tf = transforms.Compose(
            [
                transforms.RandomResizedCrop(self.image_size, scale=self.scale),
                transforms.RandomHorizontalFlip(),
                transforms.ToTensor(),
                norm,
            ]
        )
        val_tf = transforms.Compose(
            [
                transforms.Resize(int(round(self.image_size / self.crop_ratio))),
                transforms.CenterCrop(self.image_size),
                transforms.ToTensor(),
                norm,
            ]
        )
        root = Path(self.root).expanduser()
        if self.decode == "tensor":
            from torchvision.io import read_file

            self.train_set = _image_folder(root / "train", loader=read_file)
            self.val_set = _image_folder(root / "val", loader=read_file)
            return
        self.train_set = _image_folder(root / "train", transform=train_tf)
        self.val_set = _image_folder(root / "val", transform=val_tf)

    @property
    def _workers(self) -> int:
        """``data.num_workers``, at most the CPUs this process may use (more only compete for them)."""
        import os

        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        return min(self.num_workers, cpus)

    @property
    def _pin(self) -> bool:
        """Pinned host memory for PIL batches, when there is a GPU to copy them to."""
        import torch

        return self.decode == "pil" and torch.cuda.is_available()

    def _loader(self, ds, batch_size: int, shuffle: bool) -> DataLoader:
        if self.trainer is not None and self.trainer.world_size > 1:
            batch_size = max(1, batch_size // self.trainer.world_size)
        return DataLoader(
            ds,
            batch_size=batch_size,
            shuffle=shuffle,
            num_workers=self._workers,
            pin_memory=self._pin,
            persistent_workers=self._workers > 0,
            drop_last=shuffle,
            collate_fn=_encoded_batch if self.decode == "tensor" else None,
        )

    def train_dataloader(self) -> DataLoader:
        """(seed, epoch)-ordered and resumable mid-epoch (``binexp.data.seeding``); PIL transforms
        run under a per-sample seed, tensor decoding under a per-batch one."""
        from binexp.data.seeding import SeededSamples, default_seed, train_loader

        batch_size = self.batch_size
        if self.trainer is not None and self.trainer.world_size > 1:
            batch_size = max(1, batch_size // self.trainer.world_size)
        seed = default_seed(self.run_seed)
        pil = self.decode == "pil"
        if self.train_set is None:
            raise RuntimeError("ImageFolderDataModule.setup() must run before its data loaders")
        loader = train_loader(
            SeededSamples(self.train_set, seed) if pil else self.train_set,
            batch_size,
            seed,
            self.trainer,
            keyed=pil,
            num_workers=self._workers,
            pin_memory=self._pin,
            persistent_workers=self._workers > 0,
            drop_last=True,
            collate_fn=None if pil else _encoded_batch,
        )
        self._train_loader = loader
        return loader

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, self.eval_batch_size, False)

    def test_dataloader(self) -> DataLoader:
        return self.val_dataloader()

    def on_before_batch_transfer(self, batch, dataloader_idx: int):
        if self.decode != "tensor":
            return batch
        import torch

        encoded, labels = batch
        device = self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")
        train = self.trainer is not None and self.trainer.training
        if not (train and self._train_loader is not None):
            return decode_batch(encoded, device, train, self.image_size, self.crop_ratio, self.scale), labels
        from binexp.data.seeding import mix

        progress = self._train_loader.progress
        with torch.random.fork_rng(devices=[]):  # crop parameters and flips draw from the CPU generator
            torch.manual_seed(mix(self._train_loader.epoch_sampler.seed, "augment", progress.epoch, progress.trained()))
            return decode_batch(encoded, device, train, self.image_size, self.crop_ratio, self.scale), labels


def _encoded_batch(samples):
    """Keep the variable-length file bytes as a list; labels as one tensor."""
    import torch

    return [data for data, _ in samples], torch.tensor([label for _, label in samples])


def decode_batch(encoded: list, device, train: bool, image_size: int, crop_ratio: float, scale: tuple[float, float]):
    """File bytes -> normalised float batch (N, 3, S, S) on ``device``: JPEGs decoded in one
    batched call on the device, other formats on the CPU; RandomResizedCrop + flip (train) or
    resize + center crop (val), as in the PIL pipeline."""
    import torch
    from torchvision import transforms
    from torchvision.io import ImageReadMode, decode_image, decode_jpeg
    from torchvision.transforms.v2 import functional as TF

    from binexp.data.augment import IMAGENET_MEAN, IMAGENET_STD, normalize_uint8

    is_jpeg = [len(d) > 2 and int(d[0]) == 0xFF and int(d[1]) == 0xD8 for d in encoded]
    images: list = [None] * len(encoded)
    jpeg_idx = [i for i, j in enumerate(is_jpeg) if j]
    if jpeg_idx:
        decoded = decode_jpeg([encoded[i] for i in jpeg_idx], mode=ImageReadMode.RGB, device=device)
        for i, img in zip(jpeg_idx, decoded):
            images[i] = img
    for i, j in enumerate(is_jpeg):
        if not j:
            images[i] = decode_image(encoded[i], mode=ImageReadMode.RGB).to(device)
    out = []
    for img in images:
        if train:
            top, left, h, w = transforms.RandomResizedCrop.get_params(img, scale=list(scale), ratio=[3 / 4, 4 / 3])
            img = TF.resized_crop(img, top, left, h, w, [image_size, image_size], antialias=True)
            if torch.rand(()) < 0.5:
                img = img.flip(-1)
        else:
            img = TF.center_crop(
                TF.resize(img, [int(round(image_size / crop_ratio))], antialias=True), [image_size, image_size]
            )
        out.append(img)
    return normalize_uint8(torch.stack(out), IMAGENET_MEAN, IMAGENET_STD)
