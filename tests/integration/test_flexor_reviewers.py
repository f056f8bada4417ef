"""End to end on an MNIST IDX fixture: FleXOR's LeNet-5 with flatten=filter trains, records the
sign-bit entropy / Huffman numbers and the model size in metrics.json, `binexp summary --run`
prints the same numbers, and `binexp export` rebuilds the filter-chunked weights bit-exactly."""

from __future__ import annotations

import json

import pytest

from binexp.cli import main
from tests.conftest import QUICK, read_metrics, run_cli
from tests.unit.test_mnist_lenet import write_mnist_fixture


@pytest.mark.slow
def test_lenet5_mnist_filter_run_records_entropy_and_exports(tmp_path, capsys):
    root = write_mnist_fixture(tmp_path / "mnist", n_train=100, n_test=50, gz=True)
    run = tmp_path / "run"
    r = run_cli(
        [
            "train",
            "experiment=flexor_lenet5_mnist_nout20_b04",
            f"data.root={root}",
            "quantizer.flatten=filter",
            "trainer.max_epochs=1",
            "trainer.limit_train_batches=2",
            f"hydra.run.dir={run}",
            *QUICK,
        ],
        tmp_path,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    m = read_metrics(run)
    assert m["status"] == "completed" and m["data"] == "mnist" and m["model"] == "lenet5"
    assert list(m["layer_entropy"]) == ["conv1", "conv2", "fc1", "fc2"]
    # per filter padded to N_out = 20: conv1 32 x ceil(25/20), conv2 64 x ceil(800/20),
    # fc1 512 x ceil(3136/20), fc2 10 x ceil(512/20)
    slices = 32 * 2 + 64 * 40 + 512 * 157 + 10 * 26
    weights = 800 + 51_200 + 1_605_632 + 5_120
    assert m["params"]["binarized_weight_bits"] == 8 * slices
    assert m["stored_bits_per_weight"] == round(8 * slices / weights, 6)
    for key in ("sign_entropy_bits_per_weight", "kernel_entropy_bits_per_weight", "huffman_bits_per_weight"):
        assert 0 < m[key] <= 1.0 + 1e-6 and 0 < m["entropy_at_start"][key] <= 1.0 + 1e-6
    assert (
        m["kernel_entropy_bits_per_weight"] <= m["huffman_bits_per_weight"] <= m["huffman_bits_per_weight_with_table"]
    )
    layer_bits = sum(v["huffman_bits_per_weight"] * v["weights"] for v in m["layer_entropy"].values())
    assert m["huffman_bits_per_weight"] == pytest.approx(layer_bits / weights, abs=1e-5)
    summary = json.loads((run / "summary.json").read_text())
    assert m["model_size_kib"] == pytest.approx(summary["totals"]["memory_kib"], abs=0.01)

    capsys.readouterr()
    assert main(["summary", "--run", str(run), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (
        out["entropy"]["huffman_bits_per_weight"] == m["huffman_bits_per_weight"]
    )  # the trained bits, not a fresh net
    assert out["entropy"]["layer_entropy"] == m["layer_entropy"]
    assert main(["summary", "--run", str(run)]) == 0
    text = capsys.readouterr().out
    assert "Sign-bit information" in text and f"{m['huffman_bits_per_weight']:.4f}" in text

    assert main(["export", str(run), str(tmp_path / "lenet.flexor")]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["mismatched_bits"] == 0 and res["max_abs_diff"] == 0.0 and res["layers"] == 4
    assert main(["summary", "--run", str(tmp_path / "nothing")]) != 0
    assert capsys.readouterr().err.startswith("binexp: error: summary: no checkpoint at")
