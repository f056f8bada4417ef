"""Every option of every config group composes, validates and instantiates; bad values are
rejected with one line."""

import pytest
import torch

from binexp.commands.list import config_options
from binexp.config import validate
from binexp.data import build_datamodule
from binexp.errors import BinexpError
from binexp.lit.module import ClassifierModule
from binexp.preflight import compose
from binexp.run import build_callbacks

GROUPS = ["data", "model", "quantizer", "schedule", "trainer", "logger", "callbacks"]
CASES = [(g, o) for g in GROUPS for o in config_options(g)]


def test_every_group_has_options():
    for group in GROUPS:
        assert config_options(group), group


@pytest.mark.parametrize("group,option", CASES, ids=[f"{g}={o}" for g, o in CASES])
def test_option_composes_validates_and_instantiates(group, option, imagefolder_root):
    overrides = [f"{group}={option}"]
    if group != "data":
        overrides.append("data=synthetic")
    elif option in ("imagefolder", "imagenet"):
        overrides.append(f"data.root={imagefolder_root}")
    if group == "model" and option in ("resnet18", "resnet34"):
        overrides.append("data.image_size=64")
    cfg = compose(overrides)
    run = validate(cfg)
    dm = build_datamodule(run.data)
    assert dm.num_classes > 0
    build_callbacks(cfg, None)
    if group in ("model", "quantizer"):
        module = ClassifierModule(run.model, run.quantizer, run.schedule, dm.num_classes)
        size = cfg.data.get("image_size", 32)
        assert module(torch.randn(2, 3, size, size)).shape == (2, dm.num_classes)


def test_experiment_presets_compose():
    for option in config_options("experiment"):
        validate(compose([f"experiment={option}", "data=synthetic"]))


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["quantizer=nope"], "unknown quantizer option 'nope'; choose one of:"),
        (["quantizer.nope=1"], "unknown key quantizer.nope"),
        (["quantizer.weight_grad=sometimes"], "quantizer.weight_grad='sometimes' is not valid"),
        (["quantizer.binary_activations=maybe"], "bad value for quantizer.binary_activations"),
        (["schedule.lr=-1"], "schedule.lr must be > 0"),
        (["data=synthetic", "data.batch_size=0"], "data.batch_size must be > 0"),
        (["trainer.nope=1"], "unknown key trainer.nope"),
        (["+trainer.max_epoch=1"], "unknown trainer option trainer.max_epoch"),
        (["seed=-3"], "seed must be a non-negative integer"),
    ],
)
def test_bad_values_give_one_line(overrides, message):
    with pytest.raises(BinexpError) as e:
        validate(compose(overrides))
    assert message in str(e.value)
    assert "\n" not in str(e.value)
