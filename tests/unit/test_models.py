"""Every model builds and runs with every quantizer; binarized/FP parameter counts are exact."""

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from binexp.analysis.accounting import model_bits
from binexp.config import to_schema
from binexp.models import ModelConfig, build_model, model_names
from binexp.quant import ConvFactory, QuantConv2d, get_quantizer, quantized_layers, quantizer_names

IMAGENET = {"resnet18", "resnet34"}


def quantizer_cfg(name: str):
    return to_schema(get_quantizer(name).schema, OmegaConf.create({"name": name}), "quantizer")


def make(model: str, quantizer: str, num_classes: int = 10) -> nn.Module:
    torch.manual_seed(0)
    return build_model(ModelConfig(name=model), ConvFactory(quantizer_cfg(quantizer)), num_classes)


@pytest.mark.parametrize("quantizer", quantizer_names())
@pytest.mark.parametrize("model", model_names())
def test_forward_backward_every_model_and_quantizer(model, quantizer):
    net = make(model, quantizer)
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
