"""A LightningDataModule for image sets held in memory as one uint8 tensor (CIFAR, synthetic).

Batches are gathered by index in one op (``__getitems__``), moved to the training device as
uint8 (or gathered there directly: with ``resident_on_device`` the whole set is copied to the
accelerator once, 150 MB for CIFAR), and augmented + normalised there in
``on_after_batch_transfer``. Epoch order and augmentation derive from (run seed, epoch, batch
position) (``binexp.data.seeding``), so a resumed run, even mid-epoch, sees the same batches."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from binexp.data.augment import CIFAR_MEAN, CIFAR_STD, IMAGENET_MEAN, IMAGENET_STD, normalize_uint8, random_crop_flip
from binexp.data.base import ClassifierData
from binexp.data.seeding import ResumableDataLoader, augment_generator, default_seed, train_loader


class TensorImages(Dataset):
    """uint8 images (N, 3, H, W) and int64 labels (N,), fetched a whole batch at a time."""

    def __init__(self, images: Tensor, labels: Tensor) -> None:
        assert images.dtype == torch.uint8 and images.ndim == 4 and len(images) == len(labels)
        self.images = images
        self.labels = labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        return self.images[i], self.labels[i]

    def __getitems__(self, indices: list[int]):
        idx = torch.as_tensor(indices, dtype=torch.long, device=self.images.device)
        return self.images[idx], self.labels[idx]

    def to(self, device) -> TensorImages:
        self.images, self.labels = self.images.to(device), self.labels.to(device)
        return self


def _keep_batch(batch):
    return batch


class InMemoryDataModule(ClassifierData):
    """Subclasses implement :meth:`load` -> (train_images, train_labels, val_images, val_labels)."""

    num_classes: int = 10

    def __init__(
        self,
        batch_size: int = 128,
        eval_batch_size: int = 256,
        augment: bool = True,
        crop_padding: int = 4,
        normalize: str = "imagenet",
        resident_on_device: bool = True,
    ) -> None:
        super().__init__()
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.augment = augment
        self.crop_padding = crop_padding
        self.normalize = normalize
        self.resident_on_device = resident_on_device
        self.train_set: TensorImages | None = None
        self.val_set: TensorImages | None = None
        self.run_seed: int | None = None  # set by build_datamodule(seed=...); null: this process's torch seed
        self._train_loader: ResumableDataLoader | None = None

    def load(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is None:
            xtr, ytr, xva, yva = self.load()
            self.train_set = TensorImages(xtr, ytr)
            self.val_set = TensorImages(xva, yva)
        device = self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")
        if self.resident_on_device and device.type != "cpu":
            # the whole uint8 set lives on the accelerator: batches never cross the host bus
            self._ready(self.train_set).to(device)
            self._ready(self.val_set).to(device)

    def _ready(self, dataset: TensorImages | None) -> TensorImages:
        if dataset is None:
            raise RuntimeError(f"{type(self).__name__}.setup() must run before its data loaders")
        return dataset

    def _loader(self, ds: Dataset, batch_size: int, shuffle: bool) -> DataLoader:
        per_rank = batch_size
        if self.trainer is not None and self.trainer.world_size > 1:
            per_rank = max(1, batch_size // self.trainer.world_size)  # the config's batch is global
        return DataLoader(
            ds, batch_size=per_rank, shuffle=shuffle, num_workers=0, collate_fn=_keep_batch, drop_last=False
        )

    def train_dataloader(self) -> DataLoader:
        per_rank = self.batch_size
        if self.trainer is not None and self.trainer.world_size > 1:
            per_rank = max(1, self.batch_size // self.trainer.world_size)
        loader = train_loader(
            self._ready(self.train_set),
            per_rank,
            default_seed(self.run_seed),
            self.trainer,
            num_workers=0,
            collate_fn=_keep_batch,
        )
        self._train_loader = loader
        return loader

    def val_dataloader(self) -> DataLoader:
        return self._loader(self._ready(self.val_set), self.eval_batch_size, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self.val_dataloader()

    def transform_batch(self, batch, train: bool, generator: torch.Generator | None = None):
        """uint8 batch on the training device -> augmented (when training), normalised floats."""
        images, labels = batch
        if train and self.augment:
            images = random_crop_flip(images, pad=self.crop_padding, flip=True, generator=generator)
        if self.normalize == "imagenet":
            return normalize_uint8(images, IMAGENET_MEAN, IMAGENET_STD), labels
        if self.normalize == "cifar":
            return normalize_uint8(images, CIFAR_MEAN, CIFAR_STD), labels
        return normalize_uint8(images, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)), labels

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        train = self.trainer is not None and self.trainer.training
        generator = None
        if train and self._train_loader is not None:
            progress = self._train_loader.progress
            generator = augment_generator(
                self._train_loader.epoch_sampler.seed, progress.epoch, progress.trained(), batch[0].device
            )
        return self.transform_batch(batch, train=train, generator=generator)
