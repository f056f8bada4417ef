"""``compile=true`` works with the per-epoch callbacks: every quantizer's ResNet-20 traces into one
graph for training and one for evaluation, with no graph breaks, and the per-epoch work (RBNN's
rotation, the surrogate and S_tanh schedules, all written in place into buffers) never makes
it recompile. Dynamo's ``eager`` backend checks the tracing without a C++ toolchain; the
compiled network must also compute exactly what the eager one does."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from binexp.config import to_schema
from binexp.models import ModelConfig, build_model
from binexp.quant import ConvFactory, get_quantizer, quantized_layers


def build(name: str) -> torch.nn.Module:
    cfg = to_schema(get_quantizer(name).schema, OmegaConf.create({"name": name}), "quantizer")
    torch.manual_seed(0)
    return build_model(ModelConfig(name="resnet20"), ConvFactory(cfg), 10)


def run_epochs(net: torch.nn.Module, x, y, epochs: int = 3, after_epoch=None) -> list[torch.Tensor]:
    layers = [layer for _, layer in quantized_layers(net)]
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    outputs = []
    for epoch in range(epochs):
        for layer in layers:
            layer.epoch_start(epoch, epochs, 0)
        net.train()
        for step in range(2):
            for layer in layers:
                layer.step_start(epoch, step)
            loss = F.cross_entropy(net(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            for layer in layers:
                layer.step_end(epoch, step)
            outputs.append(loss.detach())
        net.eval()
        with torch.no_grad():
            outputs.append(net(x))
        if after_epoch is not None:
            after_epoch(epoch)
    return outputs


@pytest.mark.parametrize("quantizer", ["xnor", "rbnn", "flexor", "bireal"])
def test_one_graph_per_mode_and_no_recompiles_across_epochs(quantizer):
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(4, 3, 32, 32, generator=g), torch.randint(0, 10, (4,), generator=g)
    eager = build(quantizer)
    compiled = copy.deepcopy(eager)
    compiled.compile(backend="eager")
    graphs = []
    out_compiled = run_epochs(compiled, x, y, after_epoch=lambda e: graphs.append(counters["stats"]["unique_graphs"]))
    assert sum(counters["graph_break"].values()) == 0, dict(counters["graph_break"])
    assert graphs == [2, 2, 2]  # train + eval, traced in epoch 0, never again
    out_eager = run_epochs(eager, x, y)
    for a, b in zip(out_compiled, out_eager):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-5)
