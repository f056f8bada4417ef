"""Real photographs cut into small labelled crops: one class per photo of scikit-image's bundled
sample set (``skimage.data``: astronaut, brick, camera, chelsea, coffee, coins, ...), ready in
memory in about a second, with no download and no files of its own.

A sample is a square crop of random side (``min_scale``-``max_scale`` of the photo's shorter
side) at a random place, mirrored left-right with probability 1/2, and resized (antialiased
area interpolation) to ``image_size``. Grey photos are replicated to 3 channels. Training crops
come from the left ``1 - val_fraction`` of each photo's width and validation crops from the rest,
so no validation pixel was seen in training. Everything follows ``seed``.

Several classes are textures (brick, grass, gravel), several are grey, and a crop can be almost
flat (sky, the dark of the Hubble field), so a binary ResNet-20 does not reach 100 % at once: a
real-image set for short stability experiments (RBNN's late-training collapse shows on it and not
on ``data=synthetic``)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from binexp.data.memory import InMemoryDataModule
from binexp.errors import BinexpError
from binexp.extras import require

# the classes come from the schema (data.photos, PhotoCropsConfig in binexp/data/registry.py)
EXAMPLES = "e.g. astronaut, camera, coffee, rocket (the default list: binexp train data=photocrops --cfg job)"


def _skimage_data():
    require("photos")
    import skimage.data

    return skimage.data


def load_photo(name: str) -> Tensor:
    """One of scikit-image's sample photos as a (3, H, W) uint8 tensor (grey replicated)."""
    data = _skimage_data()
    loader = getattr(data, name, None)
    if not callable(loader):
        raise BinexpError(f"data.photos: {name!r} is not a photo of skimage.data; {EXAMPLES}")
    image = torch.as_tensor(loader())
    if image.dtype != torch.uint8 or image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (3, 4)):
        raise BinexpError(
            f"data.photos: skimage.data.{name} is not an 8-bit grey or RGB photo "
            f"({tuple(image.shape)}, {image.dtype}); {EXAMPLES}"
        )
    if image.ndim == 2:
        return image.unsqueeze(0).expand(3, -1, -1).contiguous()
    return image[..., :3].permute(2, 0, 1).contiguous()


def random_crops(
    photo: Tensor,
    n: int,
    image_size: int,
    min_scale: float,
    max_scale: float,
    x_range: tuple[float, float],
    generator: torch.Generator,
) -> Tensor:
    """``n`` crops (n, 3, image_size, image_size) uint8 of ``photo`` (3, H, W): side uniform in
    [min_scale, max_scale] x min(H, W) (at most the region's width and H, at least 1 pixel),
    top-left uniform inside the columns [x_range[0] W, x_range[1] W), mirrored with p = 1/2."""
    _, h, w = photo.shape
    x0, x1 = round(x_range[0] * w), round(x_range[1] * w)
    region = x1 - x0
    short = min(h, w)
    sides = (min_scale + (max_scale - min_scale) * torch.rand(n, generator=generator)) * short
    sides = sides.round().clamp(1, min(region, h)).long()
    u = torch.rand(n, 2, generator=generator)
    flips = torch.rand(n, generator=generator) < 0.5
    out = torch.empty(n, 3, image_size, image_size, dtype=torch.uint8)
    for i in range(n):
        s = int(sides[i])
        top = int(u[i, 0] * (h - s + 1))
        left = x0 + int(u[i, 1] * (region - s + 1))
        crop = photo[:, top : top + s, left : left + s].unsqueeze(0).float()
        crop = F.interpolate(crop, size=(image_size, image_size), mode="area" if s >= image_size else "bilinear")
        if flips[i]:
            crop = crop.flip(-1)
        out[i] = crop[0].round().clamp(0, 255).to(torch.uint8)
    return out


def make_photocrops(
    photos: tuple[str, ...],
    per_class: int,
    image_size: int,
    min_scale: float,
    max_scale: float,
    x_range: tuple[float, float],
    seed: int,
) -> tuple[Tensor, Tensor]:
    """(images (C * per_class, 3, S, S) uint8, labels) with label i = ``photos[i]``, class-major;
    photo i draws from its own generator (seed, i), so a class's crops do not depend on the others."""
    images, labels = [], []
    for label, name in enumerate(photos):
        g = torch.Generator().manual_seed(seed * 1_000_003 + label)
        images.append(random_crops(load_photo(name), per_class, image_size, min_scale, max_scale, x_range, g))
        labels.append(torch.full((per_class,), label, dtype=torch.long))
    return torch.cat(images), torch.cat(labels)


class PhotoCropsDataModule(InMemoryDataModule):
    def __init__(
        self,
        photos: tuple[str, ...],
        train_per_class: int = 480,
        val_per_class: int = 120,
        image_size: int = 32,
        min_scale: float = 0.08,
        max_scale: float = 0.35,
        val_fraction: float = 0.25,
        seed: int = 0,
        **kwargs,
    ) -> None:
        require("photos")  # at build, before a run directory is written
        super().__init__(**kwargs)
        self.photos = tuple(photos)
        self.num_classes = len(self.photos)
        self.train_per_class, self.val_per_class = train_per_class, val_per_class
        self.image_size, self.min_scale, self.max_scale = image_size, min_scale, max_scale
        self.val_fraction, self.seed = val_fraction, seed

    def load(self):
        split = 1.0 - self.val_fraction
        common = (self.image_size, self.min_scale, self.max_scale)
        xtr, ytr = make_photocrops(self.photos, self.train_per_class, *common, (0.0, split), self.seed)
        xva, yva = make_photocrops(self.photos, self.val_per_class, *common, (split, 1.0), self.seed + 1)
        return xtr, ytr, xva, yva
