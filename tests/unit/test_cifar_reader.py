"""The CIFAR batch reader: a restricted unpickler (containers, strings, numpy arrays only), str
or bytes keys, any pickle protocol, and as many classes as ``batches.meta`` names."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from binexp.config import validate
from binexp.data import build_datamodule
from binexp.data.cifar import CIFARDataModule, read_batch
from binexp.errors import BinexpError
from binexp.preflight import compose


def write(path, obj, protocol=4):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=protocol)


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
@pytest.mark.parametrize("keys", ["str", "bytes"])
def test_batches_of_any_protocol_with_str_or_bytes_keys(tmp_path, protocol, keys):
    rng = np.random.default_rng(0)
    data = rng.integers(0, 256, (5, 3072), dtype=np.uint8)
    labels = [3, 1, 4, 1, 5]
    entry = {"data": data, "labels": labels, "batch_label": "training batch 1 of 5"}
    if keys == "bytes":  # as pickle.load(..., encoding="bytes") returns a python-2 batch, and dumped again
        entry = {k.encode(): (v.encode() if isinstance(v, str) else v) for k, v in entry.items()}
    write(tmp_path / "data_batch_1", entry, protocol)
    x, y = read_batch(tmp_path / "data_batch_1", "labels")
    assert x.shape == (5, 3, 32, 32) and np.array_equal(x.reshape(5, -1), data) and y.tolist() == labels


@pytest.mark.parametrize("bad", [eval, __import__, getattr, pickle.loads])
def test_any_other_global_is_refused(tmp_path, bad):
    class Reduce:
        def __reduce__(self):
            return bad, ("1",)

    write(tmp_path / "data_batch_1", {"data": Reduce(), "labels": [0]})
    with pytest.raises(BinexpError, match=r"data_batch_1 is not plain data \(refused global builtins\.|_pickle\.loads"):
        read_batch(tmp_path / "data_batch_1", "labels")


def test_a_folder_whose_meta_names_seven_classes_has_seven(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    rng = np.random.default_rng(1)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        labels = rng.integers(0, 7, 6)
        write(folder / name, {b"data": rng.integers(0, 256, (6, 3072), dtype=np.uint8), b"labels": labels.tolist()})
    write(folder / "batches.meta", {"label_names": [f"class{i}" for i in range(7)], "num_cases_per_batch": 6})
    dm = build_datamodule(validate(compose(["data=cifar10", f"data.root={tmp_path}"])).data)
    assert isinstance(dm, CIFARDataModule) and dm.num_classes == 7
    xtr, ytr, _, yte = dm.load()
    assert xtr.shape == (30, 3, 32, 32) and int(ytr.max()) <= 6 and len(yte) == 6
    # labels beyond what the meta file names are refused with one line
    write(folder / "test_batch", {"data": rng.integers(0, 256, (2, 3072), dtype=np.uint8), "labels": [0, 9]})
    with pytest.raises(BinexpError, match=r"fall outside 0\.\.6"):
        dm.load()


def test_without_meta_the_variant_decides(cifar_root):
    assert CIFARDataModule(str(cifar_root), 10).num_classes == 10
