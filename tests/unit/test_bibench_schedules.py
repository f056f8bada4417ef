"""BiBench's accuracy-track schedules (htqin/BiBench configs/acc_cifar10, arXiv:2301.11233): the
composed optimizer settings and the learning rate at the first, middle and last epoch."""

import math

import pytest

from binexp.config import validate
from binexp.optimizer import lr_factor
from binexp.preflight import compose

CASES = {
    # name: (epochs, optimizer, lr, momentum, weight decay)
    "bibench_fp": (200, "sgd", 0.1, 0.9, 1e-4),
    "bibench_sgd": (400, "sgd", 0.1, 0.9, 1e-4),
    "bibench_adam": (400, "adam", 1e-3, None, 0.0),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_bibench_schedule_composes_and_anneals_to_zero(name):
    epochs, optimizer, lr, momentum, wd = CASES[name]
    s = validate(compose([f"schedule={name}", "data=synthetic"])).schedule
    assert (s.epochs, s.optimizer, s.lr, s.weight_decay, s.warmup_epochs) == (epochs, optimizer, lr, wd, 0)
    if momentum is not None:
        assert s.momentum == momentum and not s.nesterov
    assert s.betas == [0.9, 0.999]
    # mmcv CosineAnnealing(min_lr=0) by epoch: lr_e = lr/2 (1 + cos(pi e/E))
    assert lr_factor(s, 0, epochs) == 1.0
    assert lr_factor(s, epochs // 2, epochs) == pytest.approx(0.5, abs=1e-15)
    last = 0.5 * (1 + math.cos(math.pi * (epochs - 1) / epochs))
    assert lr_factor(s, epochs - 1, epochs) == pytest.approx(last, abs=1e-15)
    assert last < 1e-4


def test_cifar_normalisation_statistics():
    from binexp.data.augment import CIFAR_MEAN, CIFAR_STD

    assert [round(m, 4) for m in CIFAR_MEAN] == [0.4914, 0.4822, 0.4465]
    assert [round(s, 4) for s in CIFAR_STD] == [0.2023, 0.1994, 0.2010]
    assert validate(compose(["data=synthetic", "data.normalize=cifar"])).data.normalize == "cifar"


def test_binary_init_uniform_1e3_starts_binarized_weights_from_u0_1e3():
    import torch

    from binexp.models.registry import ModelConfig, build_model
    from binexp.quant import ConvFactory, quantized_layers
    from binexp.quant.reactnet import ReActNetConfig

    torch.manual_seed(0)
    net = build_model(
        ModelConfig(name="resnet20", width=0.25, binary_init="uniform_1e-3"), ConvFactory(ReActNetConfig()), 10
    )
    layers = quantized_layers(net)
    assert layers and all(float(m.weight.min()) >= 0 and float(m.weight.max()) < 1e-3 for _, m in layers)
    assert float(net.conv1.weight.abs().max()) > 1e-2  # the full-precision stem keeps the model's init
    default = build_model(ModelConfig(name="resnet20", width=0.25), ConvFactory(ReActNetConfig()), 10)
    assert float(quantized_layers(default)[0][1].weight.min()) < 0
