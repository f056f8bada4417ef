#!/usr/bin/env python
"""Write a generated ``train/`` + ``val/`` tree of JPEG class folders, for benchmarking the
ImageFolder/ImageNet loaders (PIL workers or batched decoding on the device) without ImageNet.

    python scripts/make_image_folder.py /tmp/jpegs --classes 10 --train-per-class 200 --size 320

Each class has its own colour and stripe frequency, so a network can learn it; images are
``--size`` pixels on the short side with random aspect ratios, like camera JPEGs."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image


def make_image(rng: np.random.Generator, label: int, classes: int, short: int) -> Image.Image:
    aspect = rng.uniform(0.75, 1.33)
    h, w = (short, int(short * aspect)) if aspect >= 1 else (int(short / aspect), short)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    freq = 2 * np.pi * (1 + label) / (4 * short)
    stripes = 0.5 + 0.5 * np.sin(freq * (xx + yy) + rng.uniform(0, 2 * np.pi))
    hue = np.array([(label * 97) % 256, (label * 57 + 80) % 256, (label * 31 + 160) % 256], dtype=np.float32)
    img = stripes[..., None] * hue + rng.normal(0, 25, (h, w, 3))
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("root", type=Path)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--train-per-class", type=int, default=100)
    ap.add_argument("--val-per-class", type=int, default=20)
    ap.add_argument("--size", type=int, default=320, help="short side in pixels")
    ap.add_argument("--quality", type=int, default=90)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    rng = np.random.default_rng(a.seed)
    total = 0
    for split, per_class in (("train", a.train_per_class), ("val", a.val_per_class)):
        for c in range(a.classes):
            d = a.root / split / f"class_{c:04d}"
            d.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                make_image(rng, c, a.classes, a.size).save(d / f"{i:06d}.jpg", quality=a.quality)
                total += 1
    print(f"wrote {total} JPEGs under {a.root} ({a.classes} classes)")


if __name__ == "__main__":
    main()
