"""Every model builds and runs with every quantizer; binarized/FP parameter counts are exact."""

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from binexp.analysis.accounting import model_bits
from binexp.config import to_schema
from binexp.errors import BinexpError
from binexp.models import ModelConfig, build_model, model_names
from binexp.quant import (
    ConvFactory,
    QuantConv2d,
    get_quantizer,
    linear_quantizer_names,
    quantized_layers,
    quantizer_names,
)

IMAGENET = {"resnet18", "resnet34", "resnet50", "reactnet_a"}
NEEDS_LINEAR_RULE = {"vit_cifar"}  # models that binarize nn.Linear layers
# the forward/backward smoke test of every quantizer runs the big networks narrower (their full-width
# counts are pinned below): the structure, not the width, is what each quantizer must handle
SMOKE_WIDTH = {"reactnet_a": 0.25, "resnet50": 0.25, "resnet18_bibench": 0.5, "resnet34_bibench": 0.25}


def quantizer_cfg(name: str):
    return to_schema(get_quantizer(name).schema, OmegaConf.create({"name": name}), "quantizer")


def make(model: str, quantizer: str, num_classes: int = 10, **fields) -> nn.Module:
    torch.manual_seed(0)
    return build_model(ModelConfig(name=model, **fields), ConvFactory(quantizer_cfg(quantizer)), num_classes)


@pytest.mark.parametrize("quantizer", quantizer_names())
@pytest.mark.parametrize("model", model_names())
def test_forward_backward_every_model_and_quantizer(model, quantizer):
    if model in NEEDS_LINEAR_RULE and quantizer not in linear_quantizer_names():
        with pytest.raises(BinexpError, match=f"^quantizer {quantizer} has no linear rule"):
            make(model, quantizer)
        return
    net = make(model, quantizer, width=SMOKE_WIDTH.get(model, 1.0))
    size = 64 if model in IMAGENET else 32
    x = torch.randn(2, 3, size, size)
    out = net(x)
    assert out.shape == (2, 10) and torch.isfinite(out).all()
    nn.functional.cross_entropy(out, torch.tensor([1, 2])).backward()
    # every parameter gets a finite gradient and the classifier a non-zero one (with the RBNN
    # code's BN gamma 1e-8 init the features start almost input-independent, so look at the bias)
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters() if p.requires_grad)
    head = [m for m in net.modules() if isinstance(m, nn.Linear)][-1]
    assert head.bias.grad.abs().sum() > 0


def binarized_counts(net: nn.Module) -> tuple[int, int]:
    layers = quantized_layers(net)
    return len(layers), sum(layer.num_weights for _, layer in layers)


@pytest.mark.parametrize(
    "model,layers,weights,fp32",
    [
        # hand counts: ResNet-20 binarized 18 convs = 13,824 + 50,688 + 202,752;
        # FP = stem conv 432 + stem BN 32 + 18 block BNs 1,344 + BN1d 128 + linear 650
        ("resnet20", 18, 267_264, 2_586),
        ("resnet20_bireal", 18, 267_264, 2_586),
        ("resnet32", 30, 460_800, 432 + 32 + 2 * 10 * (16 + 32 + 64) + 128 + 650),
        # ImageNet ResNet-18: 16 binary 3x3 convs; FP = stem 9,408 + BN 128 + block BNs 7,680 +
        # downsample convs 172,032 + their BNs 1,792 + BN1d 1,024 + fc 513,000
        ("resnet18", 16, 10_985_472, 705_064),
    ],
)
def test_parameter_counts(model, layers, weights, fp32):
    classes = 1000 if model in IMAGENET else 10
    net = make(model, "xnor", classes)
    assert binarized_counts(net) == (layers, weights)
    bits = model_bits(net)
    channels = sum(layer.out_channels for _, layer in quantized_layers(net))
    assert bits["params"]["binarized_weights"] == weights
    # inference needs the FP layers plus one alpha per binarized output channel
    assert bits["params"]["fp32"] == fp32 + channels
    assert bits["bits_per_weight"] == 1.0
    total = sum(p.numel() for p in net.parameters())
    assert total == weights + fp32


def test_fp_quantizer_has_no_binarized_layers_and_same_shapes():
    fp, xnor = make("resnet20", "fp"), make("resnet20", "xnor")
    assert quantized_layers(fp) == []
    assert sum(p.numel() for p in fp.parameters()) == sum(p.numel() for p in xnor.parameters())
    assert model_bits(fp)["bits_per_weight"] == 32.0


def test_first_conv_and_classifier_stay_full_precision():
    for model in model_names():
        net = make(model, "xnor", 1000 if model in IMAGENET else 10)
        first = next(m for m in net.modules() if isinstance(m, (nn.Conv2d, QuantConv2d)))
        assert type(first) is nn.Conv2d
        assert type([m for m in net.modules() if isinstance(m, nn.Linear)][-1]) is nn.Linear


@pytest.mark.parametrize(
    "model,gamma",
    [
        ("resnet20", 1e-8),
        ("resnet20_bireal", 1e-8),
        ("resnet18", 1e-8),
        ("resnet34", 1e-8),
        ("resnet18_cifar", 1.0),
        ("vgg_small", 1.0),
    ],
)
def test_batchnorm_init_follows_the_rbnn_code(model, gamma):
    net = make(model, "xnor")
    bns = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns and all(torch.all(m.weight == torch.tensor(gamma)) for m in bns)


def test_cifar_resnet18_binarizes_its_1x1_shortcuts_and_imagenet_keeps_them_fp():
    cifar = make("resnet18_cifar", "xnor")
    assert sum(1 for _, m in quantized_layers(cifar) if m.kernel_size == (1, 1)) == 3
    imnet = make("resnet18", "xnor")
    assert all(m.kernel_size == (3, 3) for _, m in quantized_layers(imnet))
    assert sum(1 for m in imnet.modules() if type(m) is nn.Conv2d and m.kernel_size == (1, 1)) == 3


def test_option_a_shortcut_pads_channels_and_subsamples():
    from binexp.models.common import OptionAShortcut

    x = torch.arange(2 * 16 * 4 * 4, dtype=torch.float32).view(2, 16, 4, 4)
    y = OptionAShortcut(16, 32, 2)(x)
    assert y.shape == (2, 32, 2, 2)
    assert torch.equal(y[:, 8:24], x[:, :, ::2, ::2]) and y[:, :8].abs().sum() == 0 and y[:, 24:].abs().sum() == 0


def _bottleneck_weights() -> int:
    """ResNet-50's binarized weights by hand: per bottleneck (in -> w -> w -> 4w) in*w + 9w^2 + 4w^2."""
    total, in_planes = 0, 64
    for w, n in zip((64, 128, 256, 512), (3, 4, 6, 3)):
        for _ in range(n):
            total += in_planes * w + 9 * w * w + 4 * w * w
            in_planes = 4 * w
    return total


@pytest.mark.parametrize(
    "model,fields,classes,total,layers,weights",
    [
        # torchvision resnet50(): 25,557,032; 48 binary convs (3 per bottleneck), the FP stem,
        # 4 FP 1x1 down-sampling convs and the fc stay
        ("resnet50", {}, 1000, 25_557_032, 48, _bottleneck_weights()),
        # ReActNet-A: 29,333,672 without the official code's 9,920 move11/move21 thresholds
        # (29,343,592 with them); 31 binary convs, 28,253,184 binary weights
        ("reactnet_a", {"act": "rprelu"}, 1000, 29_333_672, 31, 28_253_184),
        ("reactnet_a", {"act": "rprelu"}, 10, 28_318_922, 31, 28_253_184),  # CIFAR: 28,328,842 - 9,920
        # BiBench ResNet-20: 64-channel stem and a 64 -> 16 FP 1x1 downsample in its first block
        ("resnet20_bibench", {}, 10, 281_834, 18, 274_176),
        # BiBench ResNet-18/34 = the usual CIFAR ResNet-18/34 (64-channel 3x3 stem, FP 1x1 shortcuts)
        ("resnet18_bibench", {}, 10, 11_173_962, 16, 10_985_472),
        ("resnet34_bibench", {}, 10, 21_282_122, 32, 21_086_208),
        # DeiT-Tiny widths (192, 3 heads, MLP 768): 12 blocks x 4 binarized linears
        ("vit_cifar", {"act": "gelu"}, 10, 5_362_762, 48, 5_308_416),
        ("vit_cifar", {"act": "gelu", "depth": 6}, 10, 2_693_578, 24, 2_654_208),
    ],
)
def test_breadth_architecture_counts(model, fields, classes, total, layers, weights):
    fp = make(model, "fp", classes, **fields)
    assert sum(p.numel() for p in fp.parameters()) == total
    assert quantized_layers(fp) == []
    xnor = make(model, "xnor", classes, **fields)
    assert binarized_counts(xnor) == (layers, weights)
    assert sum(p.numel() for p in xnor.parameters()) == total  # xnor adds no parameters


def test_reactnet_a_structure():
    """Strides 1,2,1,2,1,2,1,1,1,1,1,2,1; the 2C blocks duplicate the 1x1 conv; 7x7 features at 224."""
    net = make("reactnet_a", "xnor", 1000, act="rprelu")
    strides = [b.conv3x3.stride[0] for b in net.features]
    assert strides == [1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1]
    assert [len(b.pointwise) for b in net.features] == [2, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1]
    feats = net.features(net.bn1(net.conv1(torch.randn(1, 3, 224, 224))))
    assert feats.shape == (1, 1024, 7, 7)
    assert type(net.features[0].act1).__name__ == "RPReLU"


def test_model_only_fields_are_refused_for_other_models():
    with pytest.raises(ValueError, match=r"^model.depth, model.heads only apply to model=vit_cifar, not resnet20"):
        ModelConfig(name="resnet20", depth=3, heads=2)
    with pytest.raises(ValueError, match=r"^model.stem_stride only apply to model=reactnet_a"):
        ModelConfig(name="resnet50", stem_stride=1)
    with pytest.raises(ValueError, match=r"^model.attn_binarize='soft'; choose one of: none, bibert, bit"):
        ModelConfig(name="vit_cifar", attn_binarize="soft")
