"""The presets of ReActNet, ReCU, FDA, AdaBin and BiBench's accuracy track: each composes and
validates with its paper's number (or none, and why) in ``meta``, and launches at smoke scale
through the CLI's entry function."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from torch import nn

from binexp.cli import main
from binexp.config import validate
from binexp.models import build_model
from binexp.models.activations import Maxout, RPReLU
from binexp.preflight import compose
from binexp.quant import ConvFactory
from tests.conftest import QUICK

CONF = Path(__file__).resolve().parents[2] / "conf" / "experiment"
NATIVE = {"recu_cifar_resnet20": 87.5, "adabin_cifar_resnet20": 88.1, "reactnet_cifar_resnet20": None}
NATIVE["fda_cifar_resnet20"] = None
BIBENCH = sorted(p.stem for p in CONF.glob("bibench_*.yaml") if p.stem != "bibench_stability")
FAST = {"recu_cifar_resnet20", "bibench_fda"}


@pytest.mark.parametrize("preset", [*sorted(NATIVE), *BIBENCH])
def test_preset_composes_with_its_paper_value_or_why_not(preset):
    cfg = compose([f"experiment={preset}"])
    run = validate(cfg)
    meta = cfg.meta
    if preset in NATIVE:
        assert meta.paper_value == NATIVE[preset]
    else:
        assert run.schedule.name == ("bibench_fp" if preset == "bibench_fp" else "bibench_adam")
        assert run.data.normalize == "cifar" and run.data.batch_size == 128
    if meta.paper_value is None:
        assert meta.paper_note  # "—" and why


@pytest.mark.parametrize(
    ("preset", "act", "module"),
    [("reactnet_cifar_resnet20", "rprelu", RPReLU), ("adabin_cifar_resnet20", "maxout", Maxout)],
)
def test_reactnet_and_adabin_presets_use_their_papers_activations(preset, act, module):
    """ReActNet's RPReLU (liuzechun/ReActNet resnet/2_step2/birealnet.py) and AdaBin's Maxout
    (BinaryNetworks/AdaBin/cifar10/nets/resnet20.py): after the stem and after each of the 18 binary convs."""
    run = validate(compose([f"experiment={preset}"]))
    assert run.model.act == act
    net = build_model(run.model, ConvFactory(run.quantizer), 10)
    assert sum(isinstance(m, module) for m in net.modules()) == 1 + 18
    assert not any(isinstance(m, nn.Hardtanh) for m in net.modules())


def test_bibench_operators_are_bibench_layers():
    q = {p: validate(compose([f"experiment={p}"])).quantizer for p in ("bibench_xnor", "bibench_dorefa", "bibench_fda")}
    assert (q["bibench_xnor"].act_scale, q["bibench_xnor"].act_grad) == ("sample_mean", "straight")
    assert q["bibench_dorefa"].variant == "bibench" and q["bibench_fda"].act_noise == "frozen"


@pytest.mark.parametrize(
    "preset", [pytest.param(p, marks=() if p in FAST else pytest.mark.slow) for p in [*sorted(NATIVE), *BIBENCH]]
)
def test_preset_launches_at_smoke_scale(preset, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["binexp"])
    monkeypatch.delenv("BINEXP_VERB", raising=False)
    run = tmp_path / "run"
    args = [f"experiment={preset}", "debug=smoke", "data.batch_size=16", "model.width=0.25", *QUICK]
    assert main(["train", *args, "callbacks.layer_diagnostics=null", f"hydra.run.dir={run}"]) == 0
    os.environ.pop("BINEXP_VERB", None)
    m = json.loads((run / "metrics.json").read_text())
    assert m["status"] == "completed" and m["epochs"] == 1
