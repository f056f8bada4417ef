"""The CIFAR-10-C reader: severity s is rows N(s-1)..Ns-1 of each file, labels of either length."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from binexp.data.cifar10c import CIFAR10CDataModule, read_npy
from binexp.errors import BinexpError


def release(root, n: int, labels_per_image: bool) -> None:
    root.mkdir()
    images = np.concatenate([np.full((n, 32, 32, 3), 10 * s, dtype=np.uint8) for s in range(1, 6)])
    images[:, 0, 0, 0] = np.arange(5 * n) % 256  # each row tagged by its index
    np.save(root / "fog.npy", images)
    labels = np.arange(n, dtype=np.int64) % 10
    np.save(root / "labels.npy", np.tile(labels, 5) if labels_per_image else labels)


@pytest.mark.parametrize("labels_per_image", [True, False])
def test_severity_rows_and_labels(tmp_path, labels_per_image):
    release(tmp_path / "c", 7, labels_per_image)
    dm = CIFAR10CDataModule(root=str(tmp_path / "c"), corruptions=("fog",), severities=(2, 4))
    dm.check_release()
    assert list(dm.pairs()) == [("fog", 2), ("fog", 4)]
    for severity in (1, 3, 5):
        dm.select("fog", severity)
        x, y = dm.val_set.images, dm.val_set.labels
        assert x.shape == (7, 3, 32, 32) and x.dtype == torch.uint8  # NHWC file -> NCHW tensor
        assert int(x[0, 1, 5, 5]) == 10 * severity and x[:, 0, 0, 0].tolist() == list(
            range(7 * (severity - 1), 7 * severity)
        )
        assert y.tolist() == [i % 10 for i in range(7)]


def test_read_npy_refuses_object_arrays_without_running_them(tmp_path):
    np.save(tmp_path / "x.npy", np.array([object()], dtype=object), allow_pickle=True)
    with pytest.raises(BinexpError, match="is not a plain numpy array"):
        read_npy(tmp_path / "x.npy", tmp_path, "u")
    np.save(tmp_path / "f.npy", np.zeros(3, dtype=np.float32))
    with pytest.raises(BinexpError, match="holds float32, expected uint8"):
        read_npy(tmp_path / "f.npy", tmp_path, "u")


def test_training_on_it_is_one_line(tmp_path):
    release(tmp_path / "c", 2, True)
    with pytest.raises(BinexpError, match="data=cifar10c is an evaluation set"):
        CIFAR10CDataModule(root=str(tmp_path / "c"), corruptions=("fog",)).setup("fit")
