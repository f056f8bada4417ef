"""A learnable synthetic image set: each class is a fixed random low-frequency pattern; samples
are that pattern, randomly shifted, scaled in contrast and covered in noise. Small enough to
train in seconds on a CPU, hard enough that a broken quantizer stays near chance."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from binexp.data.memory import InMemoryDataModule


def make_synthetic(n: int, num_classes: int, image_size: int, noise: float, seed: int) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    proto_gen = torch.Generator().manual_seed(12345)  # class prototypes are the same for train and val
    coarse = torch.randn(num_classes, 3, 4, 4, generator=proto_gen)
    protos = F.interpolate(coarse, size=(image_size, image_size), mode="bicubic", align_corners=False)
    protos = protos / protos.flatten(1).std(dim=1).view(-1, 1, 1, 1)
    labels = torch.randint(0, num_classes, (n,), generator=g)
    x = protos[labels]
    shifts = torch.randint(-2, 3, (n, 2), generator=g)
    x = torch.stack([torch.roll(xi, (int(s[0]), int(s[1])), dims=(1, 2)) for xi, s in zip(x, shifts)])
    contrast = 0.6 + 0.8 * torch.rand(n, 1, 1, 1, generator=g)
    x = contrast * x + noise * torch.randn(x.shape, generator=g)
    images = ((x * 0.2 + 0.5).clamp(0, 1) * 255).round().to(torch.uint8)
    return images, labels


class SyntheticDataModule(InMemoryDataModule):
    def __init__(
        self,
        num_classes: int = 10,
        train_size: int = 2048,
        val_size: int = 512,
        image_size: int = 32,
        noise: float = 1.0,
        seed: int = 0,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.train_size, self.val_size, self.image_size = train_size, val_size, image_size
        self.noise, self.seed = noise, seed

    def load(self):
        xtr, ytr = make_synthetic(self.train_size, self.num_classes, self.image_size, self.noise, self.seed)
        xva, yva = make_synthetic(self.val_size, self.num_classes, self.image_size, self.noise, self.seed + 1)
        return xtr, ytr, xva, yva
