"""The RBNN reviewers' questions end to end: what a run logs and records for each of them
(activation angular bias, angle penalty, Eq. 11 errors, theta), attention transfer, the new
presets, and the one-stage vs two-stage angular-bias script."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import lightning.pytorch as L
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from binexp.config import validate
from binexp.data import build_datamodule
from binexp.errors import BinexpError
from binexp.lit.act_diagnostics import ActivationDiagnostics
from binexp.lit.callbacks import LayerDiagnostics, QuantizerSchedule, RunRecord
from binexp.lit.distill import DistillConfig
from binexp.lit.module import ClassifierModule
from binexp.preflight import compose
from tests.conftest import HANG_LIMIT

REPO = Path(__file__).resolve().parents[2]
SMALL = [
    "data=synthetic",
    "data.train_size=64",
    "data.val_size=32",
    "data.batch_size=32",
    "data.eval_batch_size=32",
    "data.image_size=16",
]


def fit(tmp_path: Path, overrides: list[str], epochs: int = 2, teacher=None, distill: DistillConfig | None = None):
    run = validate(compose(overrides + SMALL))
    L.seed_everything(0, verbose=False)
    dm = build_datamodule(run.data)
    module = ClassifierModule(run.model, run.quantizer, run.schedule, dm.num_classes, angle_penalty=run.angle_penalty)
    if teacher is not None:
        module.set_teacher(teacher, distill)
    acts = ActivationDiagnostics(max_samples=16)
    record = RunRecord(str(tmp_path), {"name": "t"})
    loggers = [
        TensorBoardLogger(str(tmp_path), name="tensorboard", version=""),
        CSVLogger(str(tmp_path), name="csv", version=""),
    ]
    trainer = L.Trainer(
        max_epochs=epochs,
        limit_train_batches=2,
        limit_val_batches=1,
        num_sanity_val_steps=0,
        logger=loggers,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
        callbacks=[QuantizerSchedule(), LayerDiagnostics(histograms=False), acts, record],
        default_root_dir=str(tmp_path),
    )
    trainer.fit(module, datamodule=dm)
    record.write(trainer, status="completed")
    return trainer, module, acts, dm


def test_a_run_logs_and_records_every_rbnn_reviewer_diagnostic(tmp_path):
    trainer, module, acts, dm = fit(
        tmp_path, ["model=resnet20", "quantizer=rbnn", "quantizer.theta_stabilize=clip_grad", "angle_penalty=0.5"]
    )
    # the fixed batch is the first validation batch, kept (16 of its 32 images)
    x0 = dm.transform_batch(next(iter(dm.val_dataloader())), train=False)[0]
    assert torch.equal(acts._batch, x0[:16])
    events = EventAccumulator(str(tmp_path / "tensorboard"), size_guidance={"scalars": 0})
    events.Reload()
    tags = set(events.Tags()["scalars"])
    layers = sorted(t.split("/", 1)[1] for t in tags if t.startswith("act_angular_bias/"))
    assert len(layers) == 18 and "layer1.0.conv1" in layers
    for name in layers:
        for stat in (
            "quant_error",
            "quant_error_unscaled",
            "quant_error_unrotated",
            "quant_error_rotated",
            "quant_error_mixed",
            "rbnn_theta_dev_max",
            "rbnn_theta_grad_norm",
            "rbnn_theta_grad_norm_max",
        ):
            assert f"{stat}/{name}" in tags, (stat, name)
        act = events.Scalars(f"act_angular_bias/{name}")
        assert [s.step for s in act] == [2, 4]  # every diagnostic epoch, at the global step
        assert all(0 <= s.value < 60 for s in act)  # degrees (37 for Gaussian activations)
        # with alpha = 1 the binary weight is the rotated one: the mixed error is the rotated one
        assert events.Scalars(f"quant_error_mixed/{name}")[-1].value == pytest.approx(
            events.Scalars(f"quant_error_rotated/{name}")[-1].value, abs=1e-5
        )
    # every logger got the activation scalars
    csv_header = (tmp_path / "csv" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {f"act_angular_bias/{n}" for n in layers} <= set(csv_header)
    assert trainer.callback_metrics["train/angle_penalty"].item() > 0
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert sorted(m["act_angular_bias"]) == layers
    last = {n: events.Scalars(f"act_angular_bias/{n}")[-1].value for n in layers}
    assert m["act_angular_bias"] == pytest.approx(last, abs=1e-6)
    assert m["act_angular_bias_mean"] == pytest.approx(sum(last.values()) / 18)
    alpha = {n: float(module.net.get_submodule(n).alpha().detach().mean()) for n in layers}
    assert m["alpha_final"] == pytest.approx(alpha) and all(0 <= a <= 1 for a in alpha.values())
    assert sorted(m["angular_bias_final"]) == layers and 0 < m["angular_bias_final_mean"] < 46


def test_attention_transfer_trains_through_the_module(tmp_path):
    from binexp.models import build_model
    from binexp.models.registry import ModelConfig
    from binexp.quant import ConvFactory
    from binexp.quant.fp import FPConfig

    teacher = build_model(ModelConfig(name="resnet20"), ConvFactory(FPConfig()), 10).eval()
    trainer, *_ = fit(
        tmp_path,
        ["model=resnet20", "quantizer=xnor"],
        epochs=1,
        teacher=teacher,
        distill=DistillConfig(teacher="in-memory", attention_weight=1.0),
    )
    assert trainer.callback_metrics["train/attention_loss"].item() > 0
    student = validate(compose(["model=vgg_small", "quantizer=xnor"]))
    module = ClassifierModule(student.model, student.quantizer, student.schedule, 10)
    with pytest.raises(BinexpError, match="same ResNet blocks"):
        module.set_teacher(teacher, DistillConfig(teacher="in-memory", attention_weight=1.0))


def test_new_presets_compose_with_their_papers_numbers():
    expected = {
        "xnor_cifar_resnet20": ("xnor", "resnet20", None, None),
        "xnor_imagenet_resnet18": ("xnor", "resnet18", 51.2, 73.2),
        "rbnn_imagenet_resnet18": ("rbnn", "resnet18", 59.9, 81.9),
        "rbnn_imagenet_resnet34": ("rbnn", "resnet34", 63.1, 84.4),
        "two_stage_rbnn_cifar_stage1": ("bireal", "resnet20", None, None),
        "two_stage_rbnn_cifar_stage2": ("rbnn", "resnet20", None, None),
    }
    for preset, (quantizer, model, top1, top5) in expected.items():
        cfg = compose([f"experiment={preset}"])
        assert (cfg.quantizer.name, cfg.model.name) == (quantizer, model), preset
        assert cfg.meta.paper_value == top1 and cfg.meta.get("paper_value_top5") == top5, preset
    assert compose(["experiment=two_stage_rbnn_cifar_stage1"]).quantizer.binary_weights is False
    penalty = validate(compose(["experiment=rbnn_ablation_angle_penalty"]))
    assert penalty.angle_penalty == 0.1 and penalty.quantizer.rotation is False
    assert validate(compose(["experiment=rbnn_ablation_theta_clip"])).quantizer.theta_stabilize == "clip_grad"
    assert validate(compose(["experiment=rbnn_ablation_theta_bounded"])).quantizer.theta_stabilize == "bounded"


@pytest.mark.slow
def test_angular_bias_two_stage_script_smoke(tmp_path):
    out = tmp_path / "runs"
    r = subprocess.run(
        [
            sys.executable,
            str(REPO / "scripts" / "angular_bias_two_stage.py"),
            "--smoke",
            "--out",
            str(out),
            "data.image_size=16",
            "data.train_size=64",
            "data.val_size=32",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=HANG_LIMIT,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    rows = [
        line.split("|")[1:-1]
        for line in r.stdout.splitlines()
        if line.startswith("| ") and not line.startswith("| run")
    ]
    assert [c[0].strip() for c in rows] == ["one_stage", "stage1", "two_stage", "two_stage_at"]
    for cells in rows:
        assert 0 < float(cells[3]) < 90 and 0 < float(cells[4]) < 90, cells  # angle(x, sign x) in degrees
    stage2 = json.loads((out / "two_stage" / "metrics.json").read_text())
    assert stage2["init_from"]["loaded"] > 0 and stage2["status"] == "completed"
    assert "distilling from" in (out / "two_stage_at" / "train.log").read_text()
