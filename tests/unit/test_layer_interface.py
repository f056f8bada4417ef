"""The layer interface is explicit and open: a quantizer and a model each register by existing.

The test-only quantizer and model below live in a module written to a temporary folder and
imported from there, with their YAML files in a second config folder added by
``hydra.searchpath``: no file of binexp is edited, and ``binexp summary`` composes, validates,
builds and runs a network from them. Also: the spec every builder receives, the activation
factory (``model.act``) and the width multiplier (``model.width``)."""

from __future__ import annotations

import importlib
import json
import sys
import textwrap

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from binexp.cli import main as cli_main
from binexp.models import MODELS, ModelConfig, build_model
from binexp.quant import QUANTIZERS, ConvFactory, ConvSpec, get_quantizer, quantized_layers

PLUGIN = '''
"""A test-only quantizer and a test-only model, outside the binexp package."""
from dataclasses import dataclass

import torch.nn.functional as F
from torch import nn

from binexp.models import register_model
from binexp.models.registry import scaled
from binexp.quant import ConvSpec, QuantConv2d, register_quantizer
from binexp.quant.sign import sign_pm1


@dataclass
class HalfSignConfig:
    name: str = "test_half_sign"
    scale: float = 0.5


class HalfSignConv2d(QuantConv2d):
    """Forward: conv(x, scale * sign(W)); backward: straight through (identity) to W."""

    def __init__(self, cfg, spec):
        super().__init__(spec.in_channels, spec.out_channels, spec.kernel_size, spec.stride, spec.padding)
        self.cfg, self.spec = cfg, spec
        self._make_latent_weight()

    def quantized_weight(self):
        w = self.weight
        return self.cfg.scale * (w + (sign_pm1(w) - w).detach())


@register_quantizer("test_half_sign", HalfSignConfig, "test only: scale * sign(W)")
def build_half_sign(cfg, spec: ConvSpec):
    return HalfSignConv2d(cfg, spec)


class TinyNet(nn.Module):
    def __init__(self, conv, num_classes, width, act_layer):
        super().__init__()
        c1, c2 = scaled(8, width), scaled(16, width)
        self.stem = nn.Conv2d(3, c1, 3, 1, 1, bias=False)
        self.act0 = act_layer(c1)
        self.conv1 = conv(c1, c1, 3, 1, 1, stage=0)
        self.bn1 = nn.BatchNorm2d(c1)
        self.act1 = act_layer(c1)
        self.conv2 = conv(c1, c2, 3, 2, 1, stage=1)
        self.bn2 = nn.BatchNorm2d(c2)
        self.act2 = act_layer(c2)
        self.fc = nn.Linear(c2, num_classes)

    def forward(self, x):
        out = self.act1(self.bn1(self.conv1(self.act0(self.stem(x)))))
        out = self.act2(self.bn2(self.conv2(out)))
        return self.fc(F.adaptive_avg_pool2d(out, 1).flatten(1))


@register_model("test_tiny_net", "test only: FP stem, two binary convs, linear")
def tiny_net(cfg, conv, num_classes):
    return TinyNet(conv, num_classes, cfg.width, cfg.act_layer())
'''


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    """The plugin module and its YAML; the registries are restored afterwards."""
    (tmp_path / "binexp_test_plugin.py").write_text(textwrap.dedent(PLUGIN))
    conf = tmp_path / "conf"
    (conf / "quantizer").mkdir(parents=True)
    (conf / "model").mkdir()
    (conf / "quantizer" / "test_half_sign.yaml").write_text("name: test_half_sign\nscale: 0.5\n")
    (conf / "model" / "test_tiny_net.yaml").write_text(
        "name: test_tiny_net\nbn_gamma_init: null\nwidth: 1.0\nact: hardtanh\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    quantizers, models = dict(QUANTIZERS), dict(MODELS)
    module = importlib.import_module("binexp_test_plugin")
    yield module, conf
    sys.modules.pop("binexp_test_plugin", None)
    QUANTIZERS.clear()
    QUANTIZERS.update(quantizers)
    MODELS.clear()
    MODELS.update(models)


def test_a_test_only_quantizer_and_model_register_by_existing(plugin, capsys):
    module, conf = plugin
    assert "test_half_sign" in QUANTIZERS and "test_tiny_net" in MODELS
    qcfg = get_quantizer("test_half_sign").schema()
    factory = ConvFactory(qcfg)
    net = build_model(ModelConfig(name="test_tiny_net"), factory, 10)
    layers = quantized_layers(net)
    assert [type(m).__name__ for _, m in layers] == ["HalfSignConv2d", "HalfSignConv2d"]
    # the factory numbers the layers and passes everything the model said, as a spec
    assert factory.specs == [ConvSpec(8, 8, 3, 1, 1, stage=0, index=0), ConvSpec(8, 16, 3, 2, 1, stage=1, index=1)]
    assert [m.spec for _, m in layers] == factory.specs
    torch.manual_seed(0)
    x = torch.randn(2, 8, 6, 6)
    conv = net.conv2
    expected = F.conv2d(x, 0.5 * torch.where(conv.weight >= 0, 1.0, -1.0), None, 2, 1)
    assert torch.allclose(conv(x), expected, atol=1e-6)
    conv(x).sum().backward()  # straight through: d/dW of sum(conv(x, 0.5 sign W)) = 0.5 * d/dW' sum(conv(x, W'))
    w = conv.weight.detach().clone().requires_grad_(True)
    F.conv2d(x, 0.5 * w, None, 2, 1).sum().backward()
    assert torch.allclose(conv.weight.grad, w.grad, atol=1e-5)
    out = net(torch.randn(4, 3, 16, 16))
    assert out.shape == (4, 10) and torch.isfinite(out).all()

    # the same through the CLI: its YAML files compose, validate and build (binexp summary)
    rc = cli_main(
        [
            "summary",
            "--json",
            f"hydra.searchpath=[file://{conf}]",
            "quantizer=test_half_sign",
            "model=test_tiny_net",
            "data=synthetic",
        ]
    )
    assert rc == 0
    totals = json.loads(capsys.readouterr().out)["totals"]
    assert totals["binarized_weights"] == 8 * 8 * 9 + 16 * 8 * 9
    assert totals["weight_bits"] == totals["binarized_weights"]


def test_every_quantizer_builds_from_a_spec_and_rbnn_seeds_by_spec_index():
    """Builders take (cfg, spec); RBNN's rotation seed comes from spec.index, not a counter of its own."""
    from omegaconf import OmegaConf

    from binexp.config import to_schema

    def rbnn():
        return to_schema(get_quantizer("rbnn").schema, OmegaConf.create({"name": "rbnn", "seed": 3}), "quantizer")

    cfg = rbnn()
    a = get_quantizer("rbnn").build(cfg, ConvSpec(16, 16, 3, 1, 1, stage=0, index=5))
    b = get_quantizer("rbnn").build(cfg, ConvSpec(16, 16, 3, 1, 1, stage=0, index=5))
    c = get_quantizer("rbnn").build(cfg, ConvSpec(16, 16, 3, 1, 1, stage=0, index=6))
    assert torch.equal(a.R1, b.R1) and not torch.equal(a.R1, c.R1)
    assert a.layer_index == 5 and "_layer_counter" not in vars(cfg)
    # one config, two networks: the same rotations (each network's factory counts from 0)
    nets = [build_model(ModelConfig(name="resnet20"), ConvFactory(cfg), 10) for _ in range(2)]
    assert all(torch.equal(x.R1, y.R1) for (_, x), (_, y) in zip(quantized_layers(nets[0]), quantized_layers(nets[1])))
    assert [m.layer_index for _, m in quantized_layers(nets[0])] == list(range(18))


def _resnet20_params(width: float, act_params_per_channel: int = 0) -> int:
    """ResNet-20 (option A, BatchNorm1d before the classifier, 10 classes) with full-precision
    convs, counted by hand: channels a, b, c = round(16w), round(32w), round(64w)."""
    a, b, c = (max(1, int(ch * width + 0.5)) for ch in (16, 32, 64))
    stem = 3 * a * 9 + 2 * a
    stage1 = 6 * (9 * a * a) + 6 * 2 * a
    stage2 = 9 * a * b + 5 * (9 * b * b) + 6 * 2 * b
    stage3 = 9 * b * c + 5 * (9 * c * c) + 6 * 2 * c
    head = 2 * c + 10 * c + 10
    acts = act_params_per_channel * (7 * a + 6 * b + 6 * c)  # stem + two per block
    return stem + stage1 + stage2 + stage3 + head + acts


def _count(model: str, quantizer: str = "fp", **fields) -> int:
    net = build_model(ModelConfig(name=model, **fields), ConvFactory(get_quantizer(quantizer).schema()), 10)
    return sum(p.numel() for p in net.parameters())


def test_width_multiplier_scales_every_channel_count():
    assert _resnet20_params(1.0) == 269_850
    assert _resnet20_params(0.5) == 68_114
    assert _resnet20_params(0.75) == 152_278
    for width, expected in ((1.0, 269_850), (0.5, 68_114), (0.75, 152_278), (0.3, _resnet20_params(0.3))):
        assert _count("resnet20", width=width) == expected, width
    # xnor: the same shapes (binary weights are the latent weight), plus no other parameters
    assert _count("resnet20", "xnor", width=0.5) == 68_114
    net = build_model(ModelConfig(name="resnet20", width=0.3), ConvFactory(get_quantizer("xnor").schema()), 10)
    assert sorted({m.out_channels for _, m in quantized_layers(net)}) == [5, 10, 19]  # 4.8, 9.6, 19.2 rounded
    tiny = build_model(ModelConfig(name="resnet20", width=0.01), ConvFactory(get_quantizer("xnor").schema()), 10)
    assert {m.out_channels for _, m in quantized_layers(tiny)} == {1}
    for name in MODELS:  # every model: half width, about a quarter of the conv parameters, and it runs
        size = MODELS[name].input_size if MODELS[name].input_size == 32 else 64
        half = build_model(ModelConfig(name=name, width=0.5), ConvFactory(get_quantizer("xnor").schema()), 10)
        full_w = sum(
            m.num_weights
            for _, m in quantized_layers(
                build_model(ModelConfig(name=name), ConvFactory(get_quantizer("xnor").schema()), 10)
            )
        )
        assert sum(m.num_weights for _, m in quantized_layers(half)) * 4 == full_w, name
        assert half.eval()(torch.randn(1, 3, size, size)).shape == (1, 10), name


def test_activation_factory_is_selected_by_model_act():
    assert _count("resnet20", act="prelu") == _resnet20_params(1.0, act_params_per_channel=1)
    assert _count("resnet20", act="relu") == _resnet20_params(1.0)
    torch.manual_seed(0)
    nets = {}
    for act in ("hardtanh", "identity"):
        torch.manual_seed(0)
        nets[act] = build_model(
            ModelConfig(name="resnet20", act=act, bn_gamma_init=1.0), ConvFactory(get_quantizer("fp").schema()), 10
        ).eval()
    kinds = {act: {type(m) for m in net.modules()} for act, net in nets.items()}
    assert nn.Hardtanh in kinds["hardtanh"] and nn.Hardtanh not in kinds["identity"]
    x = 3 * torch.randn(2, 3, 32, 32)
    with torch.no_grad():  # same weights, different nonlinearity: different outputs
        assert not torch.allclose(nets["hardtanh"](x), nets["identity"](x))
    with pytest.raises(ValueError, match=r"model.act='swish' is not a known activation; choose one of: gelu, hardtanh"):
        ModelConfig(name="resnet20", act="swish")
    with pytest.raises(ValueError, match="model.width must be > 0, got 0.0"):
        ModelConfig(name="resnet20", width=0.0)


def test_bad_width_or_act_is_one_line_from_the_cli(capsys):
    assert cli_main(["summary", "model.width=-1"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "binexp: error: model.width must be > 0, got -1.0"
    assert cli_main(["summary", "model.act=swish"]) == 2
    assert "model.act='swish' is not a known activation" in capsys.readouterr().err
