"""The README's FleXOR commands compose to FleXOR's recipe (its reviewers' table is checked,
command by command, in test_readme_reviewer_commands.py)."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from binexp.config import validate
from binexp.preflight import compose, expand_sweeps

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text()


def readme_command(marker: str) -> list[str]:
    line = next(x for x in README.splitlines() if marker in x and x.startswith("binexp train"))
    return shlex.split(line.split("#", 1)[0])


def test_documented_table1_sweep_gets_flexors_recipe():
    """Defect: the documented `binexp train -m quantizer=flexor quantizer.n_in=...` trained with
    RBNN's 1000-epoch recipe at batch 256 and no S_tanh warm-up."""
    args = readme_command("FleXOR Table 1's")
    assert args[:3] == ["binexp", "train", "-m"]
    variants = expand_sweeps(args[3:], multirun=True)
    n_ins = []
    for overrides in variants:
        cfg = compose(overrides)
        run = validate(cfg)
        assert run.quantizer.name == "flexor" and run.model.name == "resnet20" and run.data.name == "cifar10"
        assert run.schedule.name == "flexor_cifar500" and run.schedule.epochs == 500
        assert (
            run.schedule.warmup_epochs == 100
            and run.schedule.milestones == [350, 400, 450]
            and run.schedule.gamma == 0.5
        )
        assert run.data.batch_size == 128
        assert run.quantizer.s_tanh_warmup_epochs == 100 and run.quantizer.n_out == 20 and run.quantizer.n_tap == 2
        assert "paper_value" not in cfg.meta  # a base preset: its runs are whatever the overrides make them
        n_ins.append(run.quantizer.n_in)
    assert sorted(n_ins) == [8, 12, 16, 20]


@pytest.mark.parametrize(
    "preset,paper", [("flexor_resnet18_imagenet_b08", (63.8, 84.8)), ("flexor_resnet18_imagenet_b063", (62.0, 83.7))]
)
def test_imagenet_presets_carry_top1_and_top5(preset, paper):
    cfg = compose([f"experiment={preset}", "data=synthetic"])
    run = validate(cfg)
    assert (cfg.meta.paper_value, cfg.meta.paper_value_top5) == paper
    assert run.model.name == "resnet18" and cfg.meta.table == "Table 3"
