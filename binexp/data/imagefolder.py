"""ImageNet or any ``train/`` + ``val/`` class-folder tree, through torchvision."""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as L
from torch.utils.data import DataLoader

from binexp.data.augment import IMAGENET_MEAN, IMAGENET_STD
from binexp.errors import BinexpError


class ImageFolderDataModule(L.LightningDataModule):
    """Train: RandomResizedCrop(image_size, scale) + horizontal flip. Val: resize the short side
    to image_size/crop_ratio, center-crop image_size. ImageNet mean/std normalisation."""

    def __init__(self, root: str = "data/imagenet", image_size: int = 224, crop_ratio: float = 0.875,
                 scale: tuple[float, float] = (0.08, 1.0), batch_size: int = 256, eval_batch_size: int = 256,
                 num_workers: int = 4, num_classes: int | None = None, name: str = "imagefolder") -> None:
        super().__init__()
        self.root = root
        self.image_size, self.crop_ratio, self.scale = image_size, crop_ratio, tuple(scale)
        self.batch_size, self.eval_batch_size, self.num_workers = batch_size, eval_batch_size, num_workers
        self.name = name
        self.expected_classes = num_classes
        self.num_classes = num_classes or len(self._classes("train"))
        self.train_set = self.val_set = None

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
            raise BinexpError(f"{self.name}: train/ and val/ under {self.root} have different class folders; fix: make them match")
        if self.expected_classes is not None and len(train) != self.expected_classes:
            raise BinexpError(
                f"{self.name}: found {len(train)} classes under {self.root}/train but data.num_classes={self.expected_classes}; "
                f"fix: set data.num_classes={len(train)} or point data.root at the right folder"
            )

    def setup(self, stage: str | None = None) -> None:
        from torchvision import datasets, transforms

        self.check()
        norm = transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)
        train_tf = transforms.Compose([
            transforms.RandomResizedCrop(self.image_size, scale=self.scale),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            norm,
        ])
        val_tf = transforms.Compose([
            transforms.Resize(int(round(self.image_size / self.crop_ratio))),
            transforms.CenterCrop(self.image_size),
            transforms.ToTensor(),
            norm,
        ])
        root = Path(self.root).expanduser()
        self.train_set = datasets.ImageFolder(str(root / "train"), train_tf)
        self.val_set = datasets.ImageFolder(str(root / "val"), val_tf)

    def _loader(self, ds, batch_size: int, shuffle: bool) -> DataLoader:
        if self.trainer is not None and self.trainer.world_size > 1:
            batch_size = max(1, batch_size // self.trainer.world_size)
        return DataLoader(ds, batch_size=batch_size, shuffle=shuffle, num_workers=self.num_workers,
                          pin_memory=True, persistent_workers=self.num_workers > 0, drop_last=shuffle)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, self.batch_size, True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, self.eval_batch_size, False)

    def test_dataloader(self) -> DataLoader:
        return self.val_dataloader()
