"""The divergence report: which statistics moved, when a run counts as collapsed, the line said once."""

from __future__ import annotations

import logging
import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from binexp.analysis.report import divergence_note
from binexp.lit.divergence import DivergenceMonitor, describe, headline, movers, noise_band, snapshot
from binexp.quant.xnor import XnorConfig, XnorConv2d


def test_movers_rank_by_factor_against_the_median_of_history():
    history = {"flip_rate/l1": [0.003, 0.0031, 0.0029], "rbnn_theta_grad_norm/l1": [0.03, 0.02], "bn_scale/bn": [1.0]}
    now = {"flip_rate/l1": 0.28, "rbnn_theta_grad_norm/l1": 2.35, "bn_scale/bn": 1.01, "new/l2": 5.0}
    moved = movers(now, history)
    assert [(m["layer"], m["stat"]) for m in moved] == [("l1", "rbnn_theta_grad_norm"), ("l1", "flip_rate")]
    assert moved[0]["before"] == 0.025 and moved[0]["factor"] == pytest.approx((2.35 + 1e-6) / (0.025 + 1e-6))
    # a share of weights moves against a floor of 1e-3
    assert moved[1]["before"] == 0.003 and moved[1]["factor"] == pytest.approx((0.28 + 1e-3) / (0.003 + 1e-3))
    assert describe(moved[0]) == "l1 θ gradient norm ×94" and describe(moved[1]) == "l1 flip rate ×70.2"
    # a fall reads as a division; a non-finite value ranks first
    fell = movers(
        {"rbnn_alpha_mean/l1": 0.01, "quant_error/l2": math.nan}, {"rbnn_alpha_mean/l1": [1.0], "quant_error/l2": [0.3]}
    )
    assert [m["stat"] for m in fell] == ["quant_error", "rbnn_alpha_mean"]
    assert describe(fell[0]) == "l2 quantization error → nan" and describe(fell[1]) == "l1 α ÷100"


def test_the_line_names_each_statistic_once_grouped_by_layer():
    # what a collapsed RBNN run moved (half-width ResNet-20 on photocrops, epoch 11 of 12): the largest
    # theta gradient of the same layers ranks next, then the flip rate
    moved = [
        {"layer": "layer1.1.conv1", "stat": "rbnn_theta_grad_norm", "now": 2.07e4, "before": 0.01, "factor": 2.07e6},
        {"layer": "layer1.1.conv1", "stat": "rbnn_theta_grad_norm_max", "now": 9.9e3, "before": 0.01, "factor": 9.9e5},
        {"layer": "layer1.0.conv1", "stat": "rbnn_theta_grad_norm", "now": 9.2e3, "before": 0.01, "factor": 9.2e5},
        {"layer": "layer1.1.conv1", "stat": "flip_rate", "now": 0.27, "before": 0.003, "factor": 90.0},
        {"layer": "layer2.0.conv2", "stat": "rbnn_alpha_mean", "now": 0.3, "before": 0.9, "factor": 3.0},
        {"layer": "bn1", "stat": "bn_scale", "now": 2.0, "before": 1.0, "factor": 2.0},
    ]
    assert headline(moved) == "layer1.1.conv1 θ gradient norm ×2.07e+06, flip rate ×90; layer2.0.conv2 α ÷3"
    assert headline(moved, n=1) == "layer1.1.conv1 θ gradient norm ×2.07e+06"
    assert headline([]) == ""


def test_a_share_of_weights_falling_to_zero_is_not_what_moved_most():
    # a collapsed full-width RBNN run (photocrops, epoch 16 of 20): a flip rate of 0.0012 falling to 0
    # ranked above the theta gradient's x155 when every statistic moved against 1e-6
    history = {"flip_rate/layer2.0.conv1": [0.0012] * 3, "rbnn_theta_grad_norm_max/layer1.0.conv1": [0.1] * 3}
    now = {"flip_rate/layer2.0.conv1": 0.0, "rbnn_theta_grad_norm_max/layer1.0.conv1": 15.5}
    moved = movers(now, history)
    assert [m["stat"] for m in moved] == ["rbnn_theta_grad_norm_max", "flip_rate"]
    assert moved[1]["factor"] == pytest.approx((0.0012 + 1e-3) / 1e-3)
    assert movers({"flip_rate/l": 0.28}, {"flip_rate/l": [0.003]})[0]["factor"] == pytest.approx(0.281 / 0.004)


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = XnorConv2d(XnorConfig(), 2, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)


class Module(nn.Module):
    num_classes = 10

    def __init__(self) -> None:
        super().__init__()
        self.net = Net()
        self.train_loss = torch.tensor(1.0)


def _epoch(monitor: DivergenceMonitor, module: Module, epoch: int, val: float, rank0: bool = True, **trainer_attrs):
    trainer = SimpleNamespace(
        sanity_checking=False,
        current_epoch=epoch,
        callback_metrics={"val/acc1": torch.tensor(val), "val/loss": torch.tensor(1.0)},
        is_global_zero=rank0,
        should_stop=False,
        **trainer_attrs,
    )
    monitor.on_train_epoch_end(trainer, module)
    return trainer


def test_snapshot_names_layer_statistics_flip_rate_gradient_norm_and_bn_scale():
    module = Module()
    with torch.no_grad():
        module.net.bn.weight.fill_(0.5)
    module.net.conv.weight.grad = torch.full_like(module.net.conv.weight, 0.5)
    signs: dict = {}
    first = snapshot(module, signs)
    assert first["bn_scale/bn"] == 0.5 and first["grad_norm/conv"] == pytest.approx(0.5 * math.sqrt(4 * 2 * 9))
    assert {"angular_bias/conv", "quant_error/conv"} <= set(first) and "flip_rate/conv" not in first
    with torch.no_grad():
        module.net.conv.weight[:2].neg_()  # half the output channels flip
    assert snapshot(module, signs)["flip_rate/conv"] == 0.5


def test_collapse_is_reported_once_with_what_moved(caplog):
    torch.manual_seed(0)
    module, monitor = Module(), DivergenceMonitor()
    caplog.set_level(logging.INFO, logger="binexp.epoch")
    for epoch, val in enumerate([40.0, 58.5, 54.1]):  # a 4.4-point dip is not a collapse
        assert not _epoch(monitor, module, epoch, val).should_stop
    assert monitor.event is None and not caplog.records
    with torch.no_grad():
        module.net.bn.weight.mul_(80.0)
    _epoch(monitor, module, 3, 34.2)  # 24.3 points below the best: more than a quarter of (58.5 - 10)
    assert (
        monitor.event["epoch"] == 4 and monitor.event["kind"] == "collapse" and monitor.event["best_val_acc1"] == 58.5
    )
    top = monitor.event["moved"][0]
    assert (top["layer"], top["stat"], top["factor"]) == ("bn", "bn_scale", pytest.approx(80.0, rel=1e-4))
    (line,) = [r.getMessage() for r in caplog.records]
    assert line.startswith("collapsed at epoch 4: val top-1 34.20% (best 58.50%); bn BN scale |γ| ×80")
    _epoch(monitor, module, 4, 20.0)  # still down: said once
    assert len(caplog.records) == 1 and monitor.run_record()["divergence"]["epoch"] == 4


def test_a_run_that_never_learned_does_not_collapse():
    module, monitor = Module(), DivergenceMonitor()
    for epoch, val in enumerate([12.5, 18.0, 6.25, 11.0]):  # noise around chance (10 %) on a tiny val set
        _epoch(monitor, module, epoch, val)
    assert monitor.event is None and monitor.run_record() == {}


def test_non_finite_loss_stops_the_run_on_every_rank():
    module, monitor = Module(), DivergenceMonitor()
    _epoch(monitor, module, 0, 30.0)
    module.train_loss = torch.tensor(math.nan)
    assert _epoch(monitor, module, 1, 10.0).should_stop
    assert monitor.event["kind"] == "non-finite" and monitor.event["what"] == "train loss not finite"
    assert monitor.event["train_loss"] == "nan"  # JSON has no NaN
    other = DivergenceMonitor()
    assert _epoch(other, module, 1, 10.0, rank0=False).should_stop and other.event is None
    assert not _epoch(DivergenceMonitor(stop_on_nonfinite=False), module, 1, 10.0).should_stop


def test_history_survives_a_checkpoint():
    module, monitor = Module(), DivergenceMonitor()
    for epoch, val in enumerate([30.0, 50.0]):
        _epoch(monitor, module, epoch, val)
    restored = DivergenceMonitor()
    restored.load_state_dict(torch.load(_saved(monitor.state_dict()), weights_only=True))
    assert restored.best == 50.0 and restored.history == monitor.history and restored.event is None


def _saved(state: dict):
    import io

    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return buf


def test_report_note():
    run = lambda d: SimpleNamespace(metrics={"divergence": d} if d else {})  # noqa: E731
    assert divergence_note([run({"kind": "collapse", "epoch": 16})]) == "collapsed at epoch 16"
    assert divergence_note([run({"kind": "non-finite", "epoch": 3})]) == "diverged at epoch 3"
    assert divergence_note(
        [run(None), run({"kind": "collapse", "epoch": 16}), run({"kind": "collapse", "epoch": 17})]
    ) == ("2 of 3 runs collapsed (epochs 16, 17)")
    assert divergence_note([run(None)]) == ""


def test_a_dip_within_the_noise_of_a_small_validation_set_is_not_a_collapse():
    # rbnn_ablation_t at smoke scale (one validation batch of 128 synthetic images): 21.88 % -> 14.45 %
    assert noise_band(21.875, 128) == pytest.approx(300 * math.sqrt(0.21875 * 0.78125 / 128))  # 10.96 points
    assert noise_band(70.0, None) == 0.0 and noise_band(70.0, 10_000) == pytest.approx(1.375, abs=1e-3)

    def run(samples: int, batches: int) -> DivergenceMonitor:
        module, monitor = Module(), DivergenceMonitor()
        loader = SimpleNamespace(dataset=range(samples), batch_size=128)
        for epoch, val in enumerate([12.5, 21.875, 14.453125]):
            _epoch(monitor, module, epoch, val, val_dataloaders=loader, num_val_batches=[batches], world_size=1)
        return monitor

    assert run(128, 1).event is None
    assert run(10_000, 1).event is None  # limit_val_batches=1: 128 of them seen
    assert run(10_000, 79).event["kind"] == "collapse"  # all 10,000: the same 7.4-point fall is real
