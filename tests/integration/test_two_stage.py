"""init_from= (two-stage training) and distillation from a teacher run."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from binexp.config import validate
from binexp.errors import BinexpError
from binexp.lit.distill import DistillConfig, distillation_loss
from binexp.lit.module import ClassifierModule
from binexp.preflight import compose
from binexp.runs.init_from import load_compatible
from tests.conftest import HANG_LIMIT, read_metrics, run_cli

SHORT = ["debug=smoke"]  # conf/debug/smoke.yaml: synthetic data, one epoch of 2 batches, no sanity check


@pytest.fixture(scope="module")
def stage1(tmp_path_factory):
    """A finished first-stage run (full precision here; the two-stage preset uses binary activations)."""
    tmp = tmp_path_factory.mktemp("stage1")
    run = tmp / "run"
    r = run_cli(["train", "quantizer=fp", *SHORT, f"hydra.run.dir={run}"], tmp)
    assert r.returncode == 0, r.stderr[-2000:]
    return run


def build(overrides: list[str]) -> tuple[ClassifierModule, object]:
    run = validate(compose(overrides))
    return ClassifierModule(run.model, run.quantizer, run.schedule, 10), run


def test_stage2_starts_from_stage1_weights(stage1):
    module, run = build(["data=synthetic", "quantizer=xnor", f"init_from={stage1}"])
    report = load_compatible(module, stage1, run.model.name)
    saved = torch.load(stage1 / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["state_dict"]
    net_keys = [k for k in module.state_dict() if k.startswith("net.")]
    assert sorted(report.loaded) == sorted(net_keys) and report.new == [] and report.skipped == []
    for k in net_keys:
        assert torch.equal(module.state_dict()[k], saved[k]), k
    # the metric state of the old run is not carried over
    assert "val_acc1_best.max_value" not in report.loaded


def test_stage2_through_the_cli_reports_what_it_loaded(tmp_path, stage1):
    run = tmp_path / "stage2"
    dump = [("tests.support.rank_state.RankStateDump", {})]
    r = run_cli(
        ["train", "quantizer=xnor", f"init_from={stage1}", *SHORT, f"hydra.run.dir={run}"], tmp_path, callbacks=dump
    )
    assert r.returncode == 0, r.stderr[-2000:]
    m = read_metrics(run)
    assert m["init_from"]["loaded"] > 100 and m["init_from"]["new"] == [] and m["status"] == "completed"
    assert f"loaded {m['init_from']['loaded']} tensors, new 0, skipped 0\n" in (run / "train.log").read_text()
    # through the whole train path: at train start (step 0) every binarized layer holds stage 1's tensors
    saved = torch.load(stage1 / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["state_dict"]
    start = torch.load(run / "rank_state" / "rank0.pt", map_location="cpu", weights_only=False)["start_state"]
    assert len(start) == 18
    for layer, tensors in start.items():
        assert torch.equal(tensors["weight"], saved[f"net.{layer}.weight"]), layer


def test_mismatched_run_is_one_line(tmp_path, stage1):
    r = run_cli(["train", "model=resnet32", f"init_from={stage1}", *SHORT], tmp_path)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "trained with model=resnet20, this run uses model=resnet32" in lines[0]
    assert not (tmp_path / "outputs").exists()


def test_shape_mismatch_and_missing_checkpoint(tmp_path, stage1):
    ckpt = torch.load(stage1 / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    ckpt["state_dict"]["net.linear.weight"] = torch.zeros(3, 64)
    bad = tmp_path / "bad.ckpt"
    torch.save(ckpt, bad)
    module, run = build(["data=synthetic"])
    with pytest.raises(BinexpError, match=r"net.linear.weight has shape \(3, 64\)"):
        load_compatible(module, bad, run.model.name)
    with pytest.raises(BinexpError, match="no checkpoint at"):
        load_compatible(module, tmp_path / "nothing", run.model.name)


def test_distillation_from_a_teacher_run(tmp_path, stage1):
    run = tmp_path / "student"
    r = run_cli(
        [
            "train",
            "quantizer=xnor",
            f"distill.teacher={stage1}",
            "distill.temperature=2",
            *SHORT,
            f"hydra.run.dir={run}",
        ],
        tmp_path,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert read_metrics(run)["status"] == "completed"
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert not any("teacher" in k for k in ckpt["state_dict"])


def test_distillation_loss_values():
    s = torch.tensor([[2.0, 0.0, -1.0]])
    t = torch.tensor([[1.0, 1.0, 0.0]])
    y = torch.tensor([0])
    cfg = DistillConfig(temperature=2.0, weight=1.0)
    p_t, log_p_s = F.softmax(t / 2, 1), F.log_softmax(s / 2, 1)
    expected = (p_t * (p_t.log() - log_p_s)).sum() * 4
    assert distillation_loss(s, t, y, cfg).item() == pytest.approx(expected.item(), rel=1e-6)
    assert distillation_loss(s, t, y, DistillConfig(weight=0.0)).item() == pytest.approx(F.cross_entropy(s, y).item())
    assert distillation_loss(t, t, y, DistillConfig(temperature=3.0)).item() == pytest.approx(0.0, abs=1e-7)


@pytest.mark.parametrize("preset", ["two_stage_stage1", "two_stage_stage2"])
def test_two_stage_presets_launch(tmp_path, preset):
    run = tmp_path / "run"
    r = run_cli(
        ["train", f"experiment={preset}", *SHORT, "trainer.limit_train_batches=1", f"hydra.run.dir={run}"], tmp_path
    )
    assert r.returncode == 0, r.stderr[-2000:]
    m = read_metrics(run)
    assert m["status"] == "completed" and m["quantizer"] == "bireal"
    assert m["bits_per_weight"] == (32.0 if preset.endswith("1") else 1.0)


@pytest.mark.slow
def test_two_stage_script_runs_both_stages(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "scripts" / "two_stage.py"
    r = subprocess.run(
        [sys.executable, str(script), "--smoke", "--out", str(tmp_path / "ts")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=HANG_LIMIT,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert "| two_stage_stage1 | 32.00 |" in r.stdout and "| two_stage_stage2 | 1.00 |" in r.stdout
    m = read_metrics(tmp_path / "ts" / "stage2")
    assert m["init_from"]["loaded"] > 100 and m["init_from"]["source"].endswith("stage1/checkpoints/last.ckpt")
