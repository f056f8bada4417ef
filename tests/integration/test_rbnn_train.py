"""RBNN through the installed CLI: when R changes, resume, TensorBoard diagnostics, the presets
and the ablation sweep (RBNN, arXiv:2009.13055, Sec. 3.2-3.4 and Table 4; the official lmbxmu/RBNN ``main.py``)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from binexp.quant import quantized_layers
from tests.conftest import HANG_LIMIT, read_metrics, run_cli
from tests.support.tb import RunEvents

DUMP = [("tests.support.rank_state.RankStateDump", {"trace": True})]  # added by the test launcher
# 3 training batches of 32 images of 16x16 px per epoch: the mechanics, not the accuracy
SMALL = [
    "data=synthetic",
    "data.train_size=96",
    "data.val_size=32",
    "data.batch_size=32",
    "data.eval_batch_size=32",
    "data.image_size=16",
    "trainer.limit_train_batches=3",
    "trainer.limit_val_batches=1",
    "trainer.enable_progress_bar=false",
]
RBNN_DIAGNOSTICS = [
    "rbnn_alpha_mean",
    "rbnn_cos_before",
    "rbnn_cos_after",
    "rbnn_objective_round0",
    "rbnn_objective_round1",
    "rbnn_objective_round2",
    "rbnn_objective_round3",
    "rbnn_rotation_flips",
    "rbnn_update_flips",
    "angular_bias",
    "quant_error",
]
METHOD_WIDE = ["rbnn_t", "rbnn_k", "rbnn_act_t", "rbnn_act_k", "rbnn_rotation_updates"]  # logged once: method/<name>
ABLATION = [
    "rbnn_ablation_xnor",
    "rbnn_ablation_t",
    "rbnn_ablation_r",
    "rbnn_ablation_rt",
    "rbnn_ablation_rat",
    "rbnn_ablation_per_epoch",
    "rbnn_ablation_per_step",
    "rbnn_ablation_full",
    "rbnn_ablation_alpha_fixed",
    "rbnn_ablation_tanh",
]
SMOKE = [
    "data=synthetic",
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=2",
    "trainer.limit_val_batches=1",
    "trainer.enable_progress_bar=false",
]


def rbnn_presets() -> list[str]:
    root = resources.files("binexp.conf") / "experiment"
    return sorted(p.name[:-5] for p in root.iterdir() if p.name.startswith("rbnn_") and p.name.endswith(".yaml"))


def load_dump(run: Path, rank: int = 0) -> dict:
    return torch.load(run / "rank_state" / f"rank{rank}.pt", map_location="cpu", weights_only=False)


def changes(trace: list[dict]) -> list[tuple[str, int, int]]:
    """(event, epoch, global_step) of every hook call at which some layer's buffers differ from
    the previous hook call."""
    out = []
    for prev, cur in zip(trace, trace[1:]):
        if cur["layers"] != prev["layers"]:
            out.append((cur["event"], cur["epoch"], cur["global_step"]))
    return out


def assert_tensorboard_diagnostics(run: Path, layers: int) -> RunEvents:
    events = RunEvents(run)
    scalars, hists = set(events.Tags()["scalars"]), set(events.Tags()["histograms"])
    names = sorted(t.split("/", 1)[1] for t in scalars if t.startswith("rbnn_cos_after/"))
    assert len(names) == layers, names
    for name in names:
        missing = [s for s in RBNN_DIAGNOSTICS if f"{s}/{name}" not in scalars]
        assert not missing, (name, missing)
        assert {f"latent_weight/{name}", f"rbnn_alpha/{name}"} <= hists
        flips = events.Scalars(f"rbnn_rotation_flips/{name}")[0].value
        assert 0.40 < flips < 0.60, (name, flips)  # Haar init: ~50 % of the signs flip
        objective = [events.Scalars(f"rbnn_objective_round{r}/{name}")[0].value for r in range(4)]
        assert objective == sorted(objective), (name, objective)
        assert not [s for s in METHOD_WIDE if f"{s}/{name}" in scalars]  # not repeated per layer
    assert events.Scalars("method/rbnn_t")[0].value == pytest.approx(0.01)
    assert events.Scalars("method/rbnn_k")[0].value == pytest.approx(100.0)
    assert events.Scalars("method/rbnn_rotation_updates")[0].value == 1.0
    return events


def test_rotation_once_per_epoch_never_in_validation_and_resume_restores_it(tmp_path):
    run = tmp_path / "run"
    # last.ckpt is written after every epoch (callbacks.last_checkpoint), whatever the accuracy
    r = run_cli(
        [
            "train",
            "model=resnet20",
            "quantizer=rbnn",
            "trainer.max_epochs=2",
            "trainer.num_sanity_val_steps=1",
            *SMALL,
            f"hydra.run.dir={run}",
        ],
        tmp_path,
        callbacks=DUMP,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    m = read_metrics(run)
    assert m["status"] == "completed" and m["global_step"] == 6
    assert (
        m["params"]["training_only_fp32"] == 11_256 + 672
    )  # R1 + R2 + theta (paper Sec. 3.1: n1*n1 + n2*n2 per layer)
    assert m["layer_reports"]["layer1.0.conv1"]["rotation"] == "bi 12x12"

    first = load_dump(run)
    trace = first["trace"]
    # the sanity check validates before any rotation; R then changes exactly at each epoch start
    assert any(e["sanity"] for e in trace) and all(e["layers"] == trace[0]["layers"] for e in trace if e["sanity"])
    assert changes(trace) == [("train_epoch_start", 0, 0), ("train_epoch_start", 1, 3)]
    for e_start, e_end in zip(
        [e for e in trace if e["event"] == "validation_start"], [e for e in trace if e["event"] == "validation_end"]
    ):
        assert e_start["layers"] == e_end["layers"]
    state = first["state"]
    assert len(state) == 18 and all(s["rotation_updates"].item() == 2 for s in state.values())
    assert_tensorboard_diagnostics(run, 18)

    ckpt = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert ckpt["epoch"] == 1  # monitor=null: every epoch is checkpointed (see NOTE below)
    for name, s in state.items():
        for key in ("R1", "R2", "theta", "rotation_updates"):
            assert torch.equal(ckpt["state_dict"][f"net.{name}.{key}"], s[key]), (name, key)
    assert not any(k.endswith((".t", ".k")) for k in ckpt["state_dict"])  # t, k are recomputed, not saved

    r = run_cli(["train", f"resume={run}", "trainer.max_epochs=3"], tmp_path, callbacks=DUMP)
    assert r.returncode == 0, r.stderr[-3000:]
    resumed = load_dump(run)
    for name, s in resumed["start_state"].items():  # after restore, before epoch 2's update
        for key in ("R1", "R2", "theta", "rotation_updates"):
            assert torch.equal(s[key], ckpt["state_dict"][f"net.{name}.{key}"]), (
                name,
                key,
            )  # bit for bit, not re-drawn
    trace2 = resumed["trace"]
    assert next(e for e in trace2 if e["event"] == "train_start")["layers"] == trace[-1]["layers"]
    assert changes(trace2) == [("train_epoch_start", 2, 6)]
    for name, s in resumed["state"].items():
        assert s["rotation_updates"].item() == 3
        assert not torch.equal(s["R1"], ckpt["state_dict"][f"net.{name}.R1"])  # warm-started update at epoch 2
    assert read_metrics(run)["epochs"] == 3


def test_step_mode_rotates_before_every_training_step(tmp_path):
    """In process (no CLI start-up): a Lightning fit with the run's callbacks and
    ``quantizer.update_interval=step``: R changes before every training step and nowhere else
    (not in the sanity check, not in validation)."""
    import lightning.pytorch as L

    from binexp.config import validate
    from binexp.data import build_datamodule
    from binexp.lit.callbacks import QuantizerSchedule
    from binexp.lit.module import ClassifierModule
    from binexp.preflight import compose
    from tests.support.rank_state import RankStateDump

    cfg = compose(["model=resnet20", "quantizer=rbnn", "quantizer.update_interval=step", *SMALL[:6]])
    run = validate(cfg)
    L.seed_everything(0, verbose=False)
    dm = build_datamodule(run.data)
    module = ClassifierModule(run.model, run.quantizer, run.schedule, dm.num_classes)
    dump = RankStateDump(trace=True)
    trainer = L.Trainer(
        max_epochs=2,
        limit_train_batches=3,
        limit_val_batches=1,
        num_sanity_val_steps=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
        callbacks=[QuantizerSchedule(), dump],
        default_root_dir=str(tmp_path),
    )
    trainer.fit(module, datamodule=dm)
    trace = load_dump(tmp_path)["trace"]
    assert any(e["sanity"] for e in trace)
    assert changes(trace) == [("train_batch_start", 0, s) for s in range(3)] + [
        ("train_batch_start", 1, s) for s in range(3, 6)
    ]
    assert all(layer.rotation_updates.item() == 6 for _, layer in quantized_layers(module))


def test_synthetic_data_overrides_the_presets_data_in_either_order():
    """Hydra applies command-line group choices after the experiment's defaults-list overrides,
    so ``data=synthetic`` wins over the preset's ``data=imagenet`` before or after it."""
    from binexp.config import validate
    from binexp.preflight import compose

    for preset, order in [(p, o) for p in rbnn_presets() for o in ("experiment_first", "data_first")]:
        overrides = [f"experiment={preset}", "data=synthetic"]
        cfg = compose(overrides if order == "experiment_first" else overrides[::-1])
        assert cfg.data.name == "synthetic" and cfg.quantizer.name == "rbnn", (preset, order)
        assert {"source", "table", "metric", "paper_value"} <= set(cfg.meta), preset
        run = validate(cfg)
        expected = 150 if "imagenet" in preset else 20 if "short" in preset else 1000  # short: a 20-epoch budget
        assert run.trainer["max_epochs"] == expected, preset


def test_preset_meta_values():
    from binexp.preflight import compose

    expected = {
        "rbnn_cifar_resnet18": 92.2,
        "rbnn_cifar_resnet20": 86.5,
        "rbnn_cifar_resnet20_bireal": 87.8,
        "rbnn_cifar_vgg_small": 91.3,
        "rbnn_imagenet_resnet18": 59.9,
        "rbnn_imagenet_resnet34": 63.1,
        "rbnn_ablation_xnor": 83.7,
        "rbnn_ablation_t": 86.6,
        "rbnn_ablation_r": 86.4,
        "rbnn_ablation_rt": 87.1,
        "rbnn_ablation_rat": 87.8,
        "rbnn_ablation_per_epoch": 86.5,
        "rbnn_ablation_per_step": 86.7,
        "rbnn_ablation_full": None,
        "rbnn_ablation_alpha_fixed": None,
        "rbnn_ablation_tanh": None,
        "rbnn_ablation_angle_penalty": None,
        "rbnn_ablation_theta_clip": None,
        "rbnn_ablation_theta_bounded": None,
        "rbnn_ablation_act_t_cap": None,  # binexp's short-budget variants (issue 23): no number published
        "rbnn_ablation_schedule_1000": None,
        "rbnn_photocrops_short": None,
        "rbnn_ablation_alpha_unconstrained": None,  # reviewer 1's "why alpha in [0, 1]?": not in the paper
        **{f"rbnn_surrogate_{s}": None for s in ("approx_sign", "clipped_ste", "scaled_tanh", "ste", "swish_sign")},
    }
    assert sorted(expected) == rbnn_presets()
    models = {
        "rbnn_cifar_resnet18": "resnet18_cifar",
        "rbnn_imagenet_resnet34": "resnet34",
        "rbnn_ablation_per_step": "resnet20",
    }
    for preset, value in expected.items():
        cfg = compose([f"experiment={preset}"])
        assert cfg.meta.paper_value == value, preset
        if preset in models:
            assert cfg.model.name == models[preset]
        if preset.startswith("rbnn_ablation") and "per_" not in preset:
            assert cfg.model.name == "resnet20_bireal"
        assert cfg.data.batch_size == (512 if "imagenet" in preset else 256)
    assert compose(["experiment=rbnn_imagenet_resnet34"]).meta.paper_value_top5 == 84.4


@pytest.mark.slow
def test_three_epochs_learn_far_above_chance_with_diagnostics(tmp_path):
    run = tmp_path / "run"
    r = run_cli(
        [
            "train",
            "quantizer=rbnn",
            "data=synthetic",
            "model=resnet20",
            "trainer.max_epochs=3",
            "trainer.enable_progress_bar=false",
            f"hydra.run.dir={run}",
        ],
        tmp_path,
        timeout=HANG_LIMIT,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    m = read_metrics(run)
    assert m["status"] == "completed" and m["epochs"] == 3
    assert m["best_val_acc1"] > 40, m  # 10 classes: chance is 10 %; seed 0 reaches ~70
    events = assert_tensorboard_diagnostics(run, 18)
    # method-wide values, logged once per epoch as method/<name> (the same for every layer)
    assert [s.value for s in events.Scalars("method/rbnn_rotation_updates")] == [1.0, 2.0, 3.0]
    assert [round(s.value, 4) for s in events.Scalars("method/rbnn_t")] == [0.01, 0.1, 1.0]  # t = 0.01 * 1000^(e/3)


@pytest.mark.slow
@pytest.mark.parametrize("preset", rbnn_presets())
def test_every_preset_launches(tmp_path, preset):
    run = tmp_path / "run"
    r = run_cli(["train", f"experiment={preset}", *SMOKE, f"hydra.run.dir={run}"], tmp_path, timeout=HANG_LIMIT)
    assert r.returncode == 0, r.stderr[-3000:]
    m = read_metrics(run)
    assert m["status"] == "completed" and m["quantizer"] == "rbnn" and m["data"] == "synthetic"
    preset_file = OmegaConf.load(str(resources.files("binexp.conf") / "experiment" / f"{preset}.yaml"))
    assert m["meta"] == OmegaConf.to_container(preset_file.meta)


@pytest.mark.slow
def test_ablation_sweep_in_one_command(tmp_path):
    sweep = tmp_path / "sweep"
    r = run_cli(
        ["train", "-m", "experiment=" + ",".join(ABLATION), *SMOKE, f"hydra.sweep.dir={sweep}"],
        tmp_path,
        timeout=HANG_LIMIT,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir())
    assert len(jobs) == len(ABLATION)
    results = {read_metrics(p)["name"]: read_metrics(p) for p in jobs}
    assert set(results) == set(ABLATION)
    assert all(m["status"] == "completed" for m in results.values())
    assert results["rbnn_ablation_rat"]["meta"]["paper_value"] == 87.8
    assert results["rbnn_ablation_xnor"]["params"]["training_only_fp32"] == 0  # no rotation, no theta
    assert results["rbnn_ablation_rt"]["params"]["training_only_fp32"] == 11_256  # R1 + R2, alpha fixed
    assert (
        results["rbnn_ablation_full"]["params"]["training_only_fp32"] == 7 * 144**2 + 6 * 288**2 + 5 * 576**2 + 18 + 672
    )  # n = 144, 288, 576 for 7, 6, 5 convs
