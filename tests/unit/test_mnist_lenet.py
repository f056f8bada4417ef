"""MNIST's IDX reader (a fixture written here), its one-line errors, and LeNet-5's layers."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from binexp.cli import main
from binexp.data.mnist import MNISTDataModule, parse_idx
from binexp.errors import BinexpError
from binexp.models import ModelConfig, build_model
from binexp.quant import ConvFactory, quantized_layers
from binexp.quant.flexor import FlexorConfig


def idx_bytes(array: np.ndarray) -> bytes:
    """The IDX encoding of a uint8 array: 0, 0, type 0x08, ndim, big-endian sizes, data."""
    return (
        bytes([0, 0, 8, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.astype(np.uint8).tobytes()
    )


def write_mnist_fixture(root: Path, n_train: int = 40, n_test: int = 20, gz: bool = False, seed: int = 0) -> Path:
    """The four MNIST IDX files with 28x28 images whose brightness encodes the label (learnable)."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("t10k", n_test)):
        labels = (np.arange(n) % 10).astype(np.uint8)
        images = np.clip(labels[:, None, None] * 25 + rng.integers(0, 20, (n, 28, 28)), 0, 255).astype(np.uint8)
        for kind, arr in (("images-idx3", images), ("labels-idx1", labels)):
            data = idx_bytes(arr)
            name = f"{split}-{kind}-ubyte"
            if gz:
                (root / (name + ".gz")).write_bytes(gzip.compress(data))
            else:
                (root / name).write_bytes(data)
    return root


def test_parse_idx_header_and_data():
    a = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    data = idx_bytes(a)
    assert data[:16] == bytes([0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4])
    assert np.array_equal(parse_idx(data), a)
    assert parse_idx(idx_bytes(np.array([7, 0, 9], dtype=np.uint8))).tolist() == [7, 0, 9]
    with pytest.raises(ValueError, match="bad magic"):
        parse_idx(b"\x01\x00\x08\x01" + data[4:])
    with pytest.raises(ValueError, match="not uint8"):
        parse_idx(bytes([0, 0, 0x0D, 1]) + data[4:])
    with pytest.raises(ValueError, match="expected 24"):
        parse_idx(data[:-1])


@pytest.mark.parametrize("gz,layout", [(False, ""), (True, "MNIST/raw")])
def test_mnist_reads_plain_and_gzipped_idx(tmp_path, gz, layout):
    write_mnist_fixture(tmp_path / "m" / layout if layout else tmp_path / "m", gz=gz)
    dm = MNISTDataModule(root=str(tmp_path / "m"))
    xtr, ytr, xte, _ = dm.load()
    assert xtr.shape == (40, 1, 28, 28) and xtr.dtype == torch.uint8 and xte.shape == (20, 1, 28, 28)
    assert ytr.tolist() == [i % 10 for i in range(40)] and ytr.dtype == torch.int64
    assert int(xtr[13].min()) >= 75 and int(xtr[13].max()) < 95  # label 3: 3*25 + noise in [0, 20)
    x, _ = dm.transform_batch((xtr[:2], ytr[:2]), train=False)
    assert x.dtype == torch.float32 and torch.allclose(x[0, 0, 0, 0], (xtr[0, 0, 0, 0] / 255.0 - 0.1307) / 0.3081)


def test_missing_mnist_is_one_line_and_writes_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = main(["train", "data=mnist", "model=lenet5", f"data.root={tmp_path / 'none'}"])
    err = capsys.readouterr().err
    assert code != 0 and err.count("\n") == 1
    assert err.startswith("binexp: error: MNIST not found under") and "data.download=true" in err
    assert not (tmp_path / "outputs").exists()


def test_corrupt_mnist_file_is_reported(tmp_path):
    root = write_mnist_fixture(tmp_path / "m")
    (root / "train-labels-idx1-ubyte").write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x05ab")
    with pytest.raises(
        BinexpError,
        match=r"MNIST file .* is corrupt \(train-labels-idx1-ubyte: 2 data bytes for shape \(5,\) \(expected 5\)\)",
    ):
        MNISTDataModule(root=str(root)).load()


def test_lenet5_layers_and_counts():
    conv = ConvFactory(FlexorConfig(n_in=8, n_out=20, seed=0))
    net = build_model(ModelConfig(name="lenet5"), conv, 10)
    assert [n for n, _ in quantized_layers(net)] == ["conv2", "fc1"]
    every = build_model(
        ModelConfig(name="lenet5", binarize_first_last=True), ConvFactory(FlexorConfig(n_in=8, n_out=20, seed=0)), 10
    )
    layers = dict(quantized_layers(every))
    assert list(layers) == ["conv1", "conv2", "fc1", "fc2"]
    # 32C5 (800) - 64C5 (51,200) - FC 3136->512 (1,605,632) - FC 512->10 (5,120)
    assert [m.num_weights for m in layers.values()] == [800, 51_200, 1_605_632, 5_120]
    assert sum(p.numel() for n, p in every.named_parameters() if n.startswith("biases")) == 32 + 64 + 512 + 10
    assert every(torch.randn(2, 1, 28, 28)).shape == (2, 10) and every(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    with pytest.raises(ValueError, match="only supported by lenet5"):
        ModelConfig(name="resnet20", binarize_first_last=True)
