"""Datasets: CIFAR (own python-batch reader), ImageFolder/ImageNet (torchvision), synthetic."""

from binexp.data.registry import DATASETS, build_datamodule, dataset_kinds

__all__ = ["DATASETS", "build_datamodule", "dataset_kinds"]
