"""CIFAR reader, batched augmentation and the synthetic set."""

import pickle

import pytest
import torch

from binexp.data.augment import normalize_uint8, random_crop_flip
from binexp.data.cifar import CIFARDataModule
from binexp.data.synthetic import make_synthetic
from binexp.errors import BinexpError


def test_random_crop_matches_a_window_of_the_padded_image():
    torch.manual_seed(0)
    x = torch.randint(0, 255, (64, 3, 8, 8), dtype=torch.uint8)
    g = torch.Generator().manual_seed(3)
    out = random_crop_flip(x, pad=2, flip=False, generator=g)
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    g = torch.Generator().manual_seed(3)
    dy = torch.randint(0, 5, (64,), generator=g)
    dx = torch.randint(0, 5, (64,), generator=g)
    for i in range(64):
        assert torch.equal(out[i], padded[i, :, dy[i] : dy[i] + 8, dx[i] : dx[i] + 8])
    assert out.dtype == torch.uint8 and len({(int(a), int(b)) for a, b in zip(dy, dx)}) > 10


def test_flip_mirrors_about_half_the_batch():
    x = torch.arange(4, dtype=torch.float32).view(1, 1, 1, 4).repeat(1000, 1, 1, 1)
    out = random_crop_flip(x, pad=0, flip=True, generator=torch.Generator().manual_seed(0))
    flipped = (out[:, 0, 0, 0] == 3).float().mean().item()
    assert 0.45 < flipped < 0.55
    assert all(torch.equal(o, x[0]) or torch.equal(o, x[0].flip(2)) for o in out[:50])


def test_normalize_uses_imagenet_statistics():
    x = torch.full((1, 3, 2, 2), 255, dtype=torch.uint8)
    out = normalize_uint8(x)
    assert out[0, :, 0, 0].tolist() == pytest.approx([(1 - 0.485) / 0.229, (1 - 0.456) / 0.224, (1 - 0.406) / 0.225])


def test_cifar_reader_reads_python_batches(cifar_root):
    dm = CIFARDataModule(root=str(cifar_root), variant=10)
    dm.check()
    xtr, ytr, xte, yte = dm.load()
    assert xtr.shape == (5 * 64, 3, 32, 32) and xtr.dtype == torch.uint8
    assert xte.shape == (64, 3, 32, 32) and ytr.dtype == torch.int64
    # the reader also accepts the batch folder itself
    CIFARDataModule(root=str(cifar_root / "cifar-10-batches-py")).check()
    with open(cifar_root / "cifar-10-batches-py" / "test_batch", "rb") as f:
        raw = pickle.load(f, encoding="latin1")
    assert torch.equal(xte[0].flatten(), torch.tensor(raw["data"][0]))


def test_cifar100_reader(tmp_path):
    from tests.conftest import write_cifar_fixture

    root = write_cifar_fixture(tmp_path / "c100", variant=100)
    xtr, ytr, _, _ = CIFARDataModule(root=str(root), variant=100).load()
    assert len(xtr) == 64 and int(ytr.max()) < 100


def test_missing_cifar_says_how_to_get_it(tmp_path):
    with pytest.raises(BinexpError) as e:
        CIFARDataModule(root=str(tmp_path / "nowhere")).check()
    msg = str(e.value)
    assert "CIFAR-10 not found" in msg and "data.download=true" in msg and "data.root=" in msg and "\n" not in msg


def test_corrupt_cifar_batch_is_reported(cifar_root):
    (cifar_root / "cifar-10-batches-py" / "data_batch_3").write_bytes(b"not a pickle")
    with pytest.raises(BinexpError, match="data_batch_3 is corrupt"):
        CIFARDataModule(root=str(cifar_root)).load()


def test_synthetic_is_deterministic_and_class_dependent():
    x1, y1 = make_synthetic(256, 10, 32, 1.0, seed=0)
    x2, y2 = make_synthetic(256, 10, 32, 1.0, seed=0)
    assert torch.equal(x1, x2) and torch.equal(y1, y2)
    # class means differ far more than within-class noise would allow by chance
    means = torch.stack([x1[y1 == c].float().mean(0) for c in range(10)])
    assert (means[0] - means[1]).abs().mean() > 5


def test_tensor_decode_matches_the_pil_pipeline(tmp_path):
    """decode=tensor (batched JPEG decode + tensor transforms) gives the PIL pipeline's val
    images up to resampling differences, and valid train crops."""
    import numpy as np
    from PIL import Image

    from binexp.data.imagefolder import ImageFolderDataModule

    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for c in range(2):
            d = tmp_path / split / f"c{c}"
            d.mkdir(parents=True)
            for i in range(3):
                img = np.clip(rng.normal(120 + 60 * c, 30, (48 + 8 * i, 40, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(img).save(d / f"{i}.jpg", quality=95)
            Image.fromarray(img).save(d / "png.png")  # a non-JPEG file takes the CPU fallback
    pil = ImageFolderDataModule(root=str(tmp_path), image_size=32, batch_size=4, eval_batch_size=8, num_workers=0)
    tensor = ImageFolderDataModule(
        root=str(tmp_path), image_size=32, batch_size=4, eval_batch_size=8, num_workers=0, decode="tensor"
    )
    pil.setup()
    tensor.setup()
    xp, yp = next(iter(pil.val_dataloader()))
    xt, yt = tensor.on_before_batch_transfer(next(iter(tensor.val_dataloader())), 0)
    assert xt.shape == xp.shape == (8, 3, 32, 32) and torch.equal(yt, yp)
    assert (xt - xp).abs().mean() < 0.05  # same decode, crop and normalisation; resize kernels differ slightly
    from binexp.data.imagefolder import decode_batch

    encoded, _ = next(iter(tensor.train_dataloader()))
    xtr = decode_batch(encoded, torch.device("cpu"), True, 32, 0.875, (0.08, 1.0))
    assert xtr.shape == (4, 3, 32, 32) and xtr.dtype == torch.float32 and torch.isfinite(xtr).all()
