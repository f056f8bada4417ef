"""binexp summary: exact parameter and MAC counts against hand counts."""

import json

import pytest

from tests.conftest import run_cli


def summary(tmp_path, *overrides):
    r = run_cli(["summary", "--json", *overrides], tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout)


def test_resnet18_xnor_counts(tmp_path):
    t = summary(tmp_path, "model=resnet18", "quantizer=xnor")["totals"]
    # 16 binary 3x3 convs: 147,456 + 516,096 + 2,064,384 + 8,257,536
    assert t["binarized_weights"] == 10_985_472 and t["weight_bits"] == 10_985_472
    # FP: stem 9,408 + BN 128 + block BNs 7,680 + downsample 172,032 + BNs 1,792 + BN1d 1,024 + fc 513,000,
    # plus one alpha per binary output channel (3,840)
    assert t["fp32_params"] == 705_064 + 3_840
    assert t["training_only"] == 0
    # Bi-Real Net's Table: 1.68e9 BOPs and 1.39e8 FLOPs for ResNet-18 at 224x224
    assert t["binary_macs"] == pytest.approx(1.68e9, rel=0.01) and t["fp_macs"] == pytest.approx(1.39e8, rel=0.01)


def test_resnet20_xnor_counts_and_macs(tmp_path):
    s = summary(tmp_path, "model=resnet20", "quantizer=xnor")
    t = s["totals"]
    assert t["binarized_weights"] == 267_264 and t["fp32_params"] == 2_586 + 672
    # binary MACs: 6 x 2,304 x 32^2 + (4,608 + 5 x 9,216) x 16^2 + (18,432 + 5 x 36,864) x 8^2
    assert t["binary_macs"] == 14_155_776 + 12_976_128 + 12_976_128
    assert t["fp_macs"] == 432 * 32 * 32 + 640  # stem conv and classifier
    assert t["memory_kib"] == pytest.approx((267_264 + 32 * 3_258) / 8 / 1024, abs=0.01)
    assert t["compression"] == pytest.approx(32 * (267_264 + 3_258) / (267_264 + 32 * 3_258), abs=0.01)
    assert t["ops"] == pytest.approx(t["binary_macs"] / 64 + t["fp_macs"])
    assert sum(1 for row in s["layers"] if row["kind"] == "binary") == 18


def test_fp_model_has_no_binary_macs(tmp_path):
    t = summary(tmp_path, "model=resnet20", "quantizer=fp")["totals"]
    assert t["binarized_weights"] == 0 and t["binary_macs"] == 0 and t["compression"] == 1.0


def test_dorefa_w1a1_counts_binary_macs_and_a2_does_not():
    from binexp.quant.dorefa import DorefaConfig, DorefaConv2d
    from binexp.quant.layers import ConvSpec

    spec = ConvSpec(16, 16, 3)
    # variant=paper quantizes its input to {0, 1} by its own rule (no surrogate): 1 bit at A1
    assert DorefaConv2d(DorefaConfig(), spec).binary_input()
    assert not DorefaConv2d(DorefaConfig(act_bits=2), spec).binary_input()
    assert not DorefaConv2d(DorefaConfig(weight_bits=2), spec).binary_input()
    assert not DorefaConv2d(DorefaConfig(binary_activations=False), spec).binary_input()


def test_binary_weights_with_real_activations_count_as_fp_macs(tmp_path):
    t = summary(tmp_path, "model=resnet20", "quantizer=xnor", "quantizer.binary_activations=false")["totals"]
    assert t["binary_macs"] == 0 and t["binarized_weights"] == 267_264


def test_table_output_and_run_directory_copy(tmp_path):
    r = run_cli(["summary", "model=vgg_small", "quantizer=xnor"], tmp_path)
    assert r.returncode == 0 and "OPs = BOPs/64 + FLOPs" in r.stdout and "compression" in r.stdout
    bad = run_cli(["summary", "quantizer=nope"], tmp_path)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "model,rotations,channels,total_bytes",
    [
        # RBNN (arXiv:2009.13055) Sec. 3.1: R1+R2 floats, the C_out count (theta and lambda each), total fp32 bytes
        ("resnet20", 11_256, 672, 50_400),
        ("resnet20_bireal", 11_256, 672, 50_400),
        ("resnet18_cifar", 62_272, 4_736, 286_976),
        ("vgg_small", 23_136, 1_664, 105_856),
        ("resnet18", 61_312, 3_840, 275_968),
        ("resnet34", 128_320, 7_552, 573_696),
    ],
)
def test_rbnn_extra_floats_match_the_reference_table(model, rotations, channels, total_bytes):
    """In-process (no subprocess per model): the same summarize() the CLI and every run use."""
    from omegaconf import OmegaConf

    from binexp.analysis.summary import summarize, totals
    from binexp.config import to_schema
    from binexp.models import ModelConfig, build_model
    from binexp.quant import ConvFactory, get_quantizer

    qcfg = to_schema(get_quantizer("rbnn").schema, OmegaConf.create({"name": "rbnn", "seed": 0}), "quantizer")
    net = build_model(ModelConfig(name=model), ConvFactory(qcfg), 10)
    t = totals(summarize(net, 64 if model in ("resnet18", "resnet34") else 32))
    assert t["training_only"] == rotations + channels  # R1, R2 and theta: training only
    xnor = build_model(
        ModelConfig(name=model),
        ConvFactory(to_schema(get_quantizer("xnor").schema, OmegaConf.create({"name": "xnor"}), "quantizer")),
        10,
    )
    tx = totals(summarize(xnor, 64 if model in ("resnet18", "resnet34") else 32))
    # at inference RBNN needs what XNOR needs: 1 bit per weight and one scale per output channel
    assert (t["binarized_weights"], t["fp32_params"]) == (tx["binarized_weights"], tx["fp32_params"])
    # the table's extra bytes: R1 + R2 + theta (training only) + lambda (the per-channel scale)
    assert 4 * (t["training_only"] + channels) == total_bytes


def _totals(model: str, quantizer: dict) -> dict:
    from omegaconf import OmegaConf

    from binexp.analysis.summary import summarize, totals
    from binexp.config import to_schema
    from binexp.models import ModelConfig, build_model
    from binexp.quant import ConvFactory, get_quantizer

    qcfg = to_schema(get_quantizer(quantizer["name"]).schema, OmegaConf.create(quantizer), "quantizer")
    return totals(summarize(build_model(ModelConfig(name=model), ConvFactory(qcfg), 10), 32))


def test_rbnn_training_state_by_name():
    t = _totals("resnet20", {"name": "rbnn", "seed": 0})
    # RBNN (arXiv:2009.13055) Sec. 3.1: R1 + R2 = 11,256 floats, theta one per output channel (672);
    # R1 is n1^2, R2 n2^2 with (n1, n2) = (12, 12), (16, 18), (24, 24) for 7, 6, 5 convs (n = 144, 288, 576)
    assert t["training_by_name"] == {"R1": 7 * 144 + 6 * 256 + 5 * 576, "R2": 7 * 144 + 6 * 324 + 5 * 576, "theta": 672}
    assert t["training_by_name"]["R1"] + t["training_by_name"]["R2"] == 11_256
    assert t["scale_floats"] == 672 and t["xor_matrices"] == 0


def test_flexor_xor_matrices_count_once_and_take_memory():
    # one M+ of N_out x N_in = 20 x 16 bits shared by all 18 layers (same seed and settings)
    t = _totals("resnet20", {"name": "flexor", "n_in": 16, "n_out": 20, "seed": 0})
    assert (t["xor_matrices"], t["xor_matrix_bits"]) == (1, 320)
    assert t["weight_bits"] == 213_984 and t["fp32_params"] == 2_586 + 672 and t["training_only"] == 0
    assert t["memory_kib"] == round((213_984 + 320 + 32 * 3_258) / 8 / 1024, 2)  # 38.89
    # q = 2 with a matrix per bit plane: two distinct 20 x 8 matrices
    t2 = _totals("resnet20", {"name": "flexor", "n_in": 8, "n_out": 20, "q": 2, "seed": 0})
    assert (t2["xor_matrices"], t2["xor_matrix_bits"]) == (2, 320) and t2["scale_floats"] == 2 * 672


def _ops(model: str, quantizer: str, size: int = 224, **fields) -> dict:
    from binexp.analysis.accounting import model_ops
    from binexp.models import ModelConfig, build_model
    from binexp.quant import ConvFactory, get_quantizer

    net = build_model(ModelConfig(name=model, **fields), ConvFactory(get_quantizer(quantizer).schema()), 1000)
    return model_ops(net, size)


def test_reactnet_a_ops_match_the_published_figure():
    """ReActNet README: ReActNet-A 0.87e8 OPs. BOPs = binary MACs of the 31 binary convs, FLOPs =
    the FP stem conv (3*32*9*112*112) and the classifier (1024*1000); OPs = FLOPs + BOPs/64."""
    ops = _ops("reactnet_a", "bireal", act="rprelu")
    assert ops["flops"] == 3 * 32 * 9 * 112 * 112 + 1024 * 1000 == 11_862_016
    assert ops["bops"] == 4_816_896_000
    assert ops["ops"] == ops["flops"] + ops["bops"] / 64 == pytest.approx(0.8713e8, rel=1e-4)
    assert round(ops["ops"] / 1e8, 2) == 0.87


def test_bireal_resnet18_ops_match_the_published_figure():
    """Bi-Real Net ResNet-18 (FP stem, FP avgpool -> 1x1 downsample, FP fc): 1.63e8 OPs in the
    Bi-Real / ReActNet tables."""
    ops = _ops("resnet18", "bireal", downsample="avgpool_conv")
    # stem 7x7 at 112^2, three 1x1 downsample convs at 28^2, 14^2, 7^2, fc
    assert ops["flops"] == 3 * 64 * 49 * 112 * 112 + 3 * (64 * 128 * 28 * 28) + 512 * 1000 == 137_793_536
    assert ops["ops"] == pytest.approx(1.63e8, rel=0.01) and ops["ops"] == pytest.approx(1.6399e8, rel=1e-4)


def test_linear_layers_count_per_token_and_the_summary_prints_ops(capsys):
    """A binarized linear layer does in*out binary MACs per token; its FP bias is a 32-bit value;
    ``binexp summary`` prints OPs for the ViT (any model)."""
    from binexp.analysis.summary import summarize, totals
    from binexp.cli import main as cli_main
    from binexp.models import ModelConfig, build_model
    from binexp.quant import ConvFactory, get_quantizer

    net = build_model(
        ModelConfig(name="vit_cifar", act="gelu", depth=1, dim=48), ConvFactory(get_quantizer("xnor").schema()), 10
    )
    rows = {r.name: r for r in summarize(net, 32)}
    tokens = 8 * 8 + 1
    assert rows["blocks.0.attn.qkv"].binary_macs == 48 * 144 * tokens
    assert rows["blocks.0.fc2"].binary_macs == 192 * 48 * tokens
    assert rows["blocks.0.fc1"].fp32_params == 192 + 192  # bias + one alpha per row
    t = totals(list(rows.values()))
    assert t["bops"] == tokens * (48 * 144 + 48 * 48 + 48 * 192 + 192 * 48)
    assert t["flops"] == 3 * 48 * 16 * 64 + 48 * 10  # patch embedding (4x4 patches, 64 of them) and head
    assert cli_main(["summary", "model=vit_cifar", "quantizer=bireal", "model.depth=1"]) == 0
    out = capsys.readouterr().out
    # one block at width 192: 65 tokens x (192*576 + 192*192 + 192*768 + 768*192) binary MACs
    assert "OPs = BOPs/64 + FLOPs:" in out and "(BOPs 2.8754e+07, FLOPs" in out


def test_no_binary_mac_says_why():
    from binexp.analysis.summary import LayerRow, compact_summary, format_summary

    # weights binarized, activations full precision (FleXOR's CIFAR ResNets, LSQ, DoReFa weights)
    weights_only = [LayerRow("conv", "binary", (16, 32, 32), 2_304, 1_843.2, 16, fp_macs=2_359_296)]
    both = [LayerRow("conv", "binary", (16, 32, 32), 2_304, 2_304, 16, binary_macs=2_359_296)]
    static = {"params": {}, "binarized_layers": 1}
    why = "(none binary: no binarized layer has 1-bit inputs)"
    assert why in compact_summary(weights_only, static)[1] and why in format_summary(weights_only)
    assert "(100.0 % binary)" in compact_summary(both, static)[1]
    assert "(binary share 100.0 %)" in format_summary(both)
    # a full-precision network has no binarized weight to explain
    fp = [LayerRow("conv", "fp-conv", (16, 32, 32), fp32_params=432, fp_macs=442_368)]
    assert "(0.0 % binary)" in compact_summary(fp, static)[1]
