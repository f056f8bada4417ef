"""data=photocrops: real photos (scikit-image's bundled samples) cut into labelled crops."""

from __future__ import annotations

import sys

import lightning.pytorch  # noqa: F401 - imported outside capsys: its log handler keeps a live stream
import pytest
import torch

from binexp.cli import main as cli_main
from binexp.data.photocrops import PhotoCropsDataModule, load_photo, random_crops
from binexp.data.registry import PHOTOS, PhotoCropsConfig, build_datamodule

pytest.importorskip("skimage.data", reason="data=photocrops needs scikit-image (binexp[photos], in binexp[dev])")


def test_the_default_set_is_12_photos_5760_training_and_1440_held_out_crops():
    dm = build_datamodule(PhotoCropsConfig(), seed=0)
    assert dm.num_classes == 12 == len(PHOTOS)
    xtr, ytr, xva, yva = dm.load()
    assert xtr.shape == (5760, 3, 32, 32) and xva.shape == (1440, 3, 32, 32)
    assert xtr.dtype == xva.dtype == torch.uint8
    assert torch.bincount(ytr).tolist() == [480] * 12 and torch.bincount(yva).tolist() == [120] * 12
    # real photos, not flat: every class spans a wide range of values, grey ones replicated to RGB
    for c in range(12):
        x = xtr[ytr == c].float()
        assert x.std() > 10, PHOTOS[c]
    grey = xtr[ytr == PHOTOS.index("camera")]
    assert torch.equal(grey[:, 0], grey[:, 1]) and torch.equal(grey[:, 1], grey[:, 2])
    rgb = xtr[ytr == PHOTOS.index("astronaut")]
    assert not torch.equal(rgb[:, 0], rgb[:, 1])


def test_crops_are_deterministic_per_seed_and_per_class():
    a = PhotoCropsDataModule(photos=("camera", "coins"), train_per_class=8, val_per_class=4, seed=3).load()
    b = PhotoCropsDataModule(photos=("camera", "coins"), train_per_class=8, val_per_class=4, seed=3).load()
    assert all(torch.equal(u, v) for u, v in zip(a, b))
    c = PhotoCropsDataModule(photos=("camera", "coins"), train_per_class=8, val_per_class=4, seed=4).load()
    assert not torch.equal(a[0], c[0])
    # a class's crops do not depend on which other photos are in the set
    d = PhotoCropsDataModule(photos=("brick", "coins"), train_per_class=8, val_per_class=4, seed=3).load()
    assert torch.equal(a[0][8:], d[0][8:]) and not torch.equal(a[0][:8], d[0][:8])
    assert not torch.equal(a[0][:4], a[2][:4])  # validation crops are drawn apart from the training ones


def test_training_and_validation_crops_come_from_disjoint_columns():
    h, w = 60, 100
    photo = torch.arange(w, dtype=torch.uint8).view(1, 1, w).expand(3, h, w).contiguous()  # value = column
    g = torch.Generator().manual_seed(0)
    train = random_crops(photo, 200, 8, 0.1, 0.5, (0.0, 0.75), g)
    val = random_crops(photo, 200, 8, 0.1, 0.5, (0.75, 1.0), g)
    assert int(train.max()) <= 74 and int(val.min()) >= 75
    assert int(train.min()) <= 5 and int(val.max()) >= 95  # both regions are covered to their edges
    # a side larger than the validation band is clamped to it (25 columns of a 60-pixel-high photo)
    assert (val.float().amax(dim=(1, 2, 3)) - val.float().amin(dim=(1, 2, 3))).max() <= 25


def test_load_photo_returns_3_channels_and_refuses_what_is_not_a_photo():
    assert load_photo("camera").shape == (3, 512, 512) and load_photo("chelsea").shape == (3, 300, 451)
    with pytest.raises(Exception, match="'nope' is not a photo of skimage.data"):
        load_photo("nope")
    with pytest.raises(Exception, match="horse is not an 8-bit grey or RGB photo"):
        load_photo("horse")  # a boolean silhouette


@pytest.mark.parametrize(
    "override,message",
    [
        ("data.val_fraction=1.0", "data.val_fraction must be in (0, 1), got 1.0"),
        ("data.max_scale=1.5", "data.min_scale <= data.max_scale <= 1 is needed, got 0.08 and 1.5"),
        ("data.train_per_class=0", "data.train_per_class must be > 0, got 0"),
        ("data.photos=[camera,camera]", "data.photos must be a non-empty list of distinct names"),
    ],
)
def test_bad_fields_are_one_line(tmp_path, monkeypatch, capsys, override, message):
    monkeypatch.chdir(tmp_path)
    assert cli_main(["train", "data=photocrops", override, "hydra.run.dir=run"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("binexp: error: ") and len(err.splitlines()) == 1 and message in err, err
    assert list(tmp_path.iterdir()) == []


def test_without_scikit_image_the_error_is_one_line_with_the_install_command(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "skimage.data", None)  # `import skimage.data` now raises ImportError
    assert cli_main(["train", "data=photocrops", "hydra.run.dir=run"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err == (
        "binexp: error: data=photocrops needs the optional package 'skimage', which is not installed; "
        "fix: pip install 'binexp[photos]'"
    )
    assert list(tmp_path.iterdir()) == []  # nothing written
