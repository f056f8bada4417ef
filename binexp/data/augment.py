"""Batched CIFAR augmentation as tensor ops on the training device (no per-image PIL work)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

# The official RBNN code normalises CIFAR with ImageNet statistics; so do we by default.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# CIFAR-10's own statistics as BiBench's configs/_base_/datasets/cifar10.py gives them (x 255):
# mean (125.307, 122.961, 113.8575), std (51.5865, 50.847, 51.255)
CIFAR_MEAN = (125.307 / 255, 122.961 / 255, 113.8575 / 255)
CIFAR_STD = (51.5865 / 255, 50.847 / 255, 51.255 / 255)


def random_crop_flip(
    images: Tensor, pad: int = 4, flip: bool = True, generator: torch.Generator | None = None
) -> Tensor:
    """Per-sample random crop after zero padding by ``pad`` and random horizontal flip, for a
    batch (N, C, H, W) of any dtype, in a constant number of kernels."""
    n, c, h, w = images.shape
    device = images.device
    if pad > 0:
        padded = F.pad(images, (pad, pad, pad, pad))
        dy = torch.randint(0, 2 * pad + 1, (n,), device=device, generator=generator)
        dx = torch.randint(0, 2 * pad + 1, (n,), device=device, generator=generator)
        rows = dy[:, None] + torch.arange(h, device=device)[None, :]  # (n, h)
        cols = dx[:, None] + torch.arange(w, device=device)[None, :]  # (n, w)
        batch = torch.arange(n, device=device)[:, None, None]
        images = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)
    if flip:
        do_flip = torch.rand(n, device=device, generator=generator) < 0.5
        images = torch.where(do_flip[:, None, None, None], images.flip(3), images)
    return images


def normalize_uint8(images: Tensor, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> Tensor:
    """uint8 (N, 3, H, W) -> float32 normalised."""
    x = images.float().div_(255.0)
    m = torch.tensor(mean, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
    s = torch.tensor(std, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
    return x.sub_(m).div_(s)
