"""LR schedules, including the official RBNN code's warm-up + cosine values."""

import math

import pytest

from binexp.optimizer import ScheduleConfig, lr_decays_before, lr_factor


def test_rbnn_cosine_reproduces_the_official_code():
    cfg = ScheduleConfig()  # rbnn_cosine, warm-up 5
    lrs = [0.1 * lr_factor(cfg, e, 1000) for e in range(1000)]
    assert lrs[:5] == pytest.approx([0.02, 0.04, 0.06, 0.08, 0.10])
    # epoch e >= 5: 0.05 * (1 + cos(pi * (e - 9) / (E - 4)))
    for e in (5, 9, 13, 500, 999):
        assert lrs[e] == pytest.approx(0.05 * (1 + math.cos(math.pi * (e - 9) / 996)))
    assert lrs[9] == pytest.approx(0.1) and max(lrs) == pytest.approx(0.1)
    assert lrs[-1] == pytest.approx(9.0e-6, rel=0.05)


def test_cosine_without_warmup_is_the_imagenet_recipe():
    cfg = ScheduleConfig(lr_schedule="cosine", warmup_epochs=0, epochs=150)
    assert lr_factor(cfg, 0, 150) == 1.0
    assert lr_factor(cfg, 75, 150) == pytest.approx(0.5)
    assert lr_factor(cfg, 149, 150) == pytest.approx(0.5 * (1 + math.cos(math.pi * 149 / 150)))


def test_multistep_with_warmup_and_decay_count():
    cfg = ScheduleConfig(lr_schedule="multistep", warmup_epochs=2, milestones=[150, 175], gamma=0.5)
    assert [lr_factor(cfg, e, 200) for e in (0, 1, 2, 149, 150, 174, 175, 199)] == [0.5, 1, 1, 1, 0.5, 0.5, 0.25, 0.25]
    assert [lr_decays_before(cfg, e) for e in (0, 150, 175)] == [0, 1, 2]


def test_linear_decay():
    cfg = ScheduleConfig(lr_schedule="linear", warmup_epochs=0)
    assert [lr_factor(cfg, e, 4) for e in range(4)] == [1.0, 0.75, 0.5, 0.25]


@pytest.mark.parametrize(
    "bad,match",
    [
        ({"lr": 0.0}, "lr must be > 0"),
        ({"epochs": 0}, "epochs must be >= 1"),
        ({"optimizer": "lamb"}, "choose one of"),
        ({"lr_schedule": "rbnn_cosine", "warmup_epochs": 0}, "needs warmup_epochs"),
        ({"milestones": [5, 3]}, "increasing"),
        ({"momentum": 1.0}, "momentum"),
    ],
)
def test_bad_schedules_are_rejected(bad, match):
    with pytest.raises(ValueError, match=match):
        ScheduleConfig(**bad)


def test_label_smoothing_reaches_the_loss():
    import torch
    import torch.nn.functional as F

    from binexp.lit.module import ClassifierModule
    from binexp.models import ModelConfig
    from binexp.quant.fp import FPConfig

    module = ClassifierModule(ModelConfig(name="resnet20"), FPConfig(), ScheduleConfig(label_smoothing=0.1), 10)
    x, y = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 3])
    module.eval()  # fixed BN statistics: the same logits twice
    loss = module.training_step((x, y), 0)
    assert loss.item() == pytest.approx(F.cross_entropy(module(x), y, label_smoothing=0.1).item(), rel=1e-6)
    assert loss.item() != pytest.approx(F.cross_entropy(module(x), y).item(), rel=1e-6)
    with pytest.raises(ValueError, match="label_smoothing"):
        ScheduleConfig(label_smoothing=1.0)
