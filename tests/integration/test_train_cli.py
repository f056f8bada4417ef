"""`binexp train` end to end through the installed CLI, as a user runs it."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from binexp.quant.registry import quantizer_names
from tests.conftest import BIN, QUICK, read_metrics, run_cli
from tests.support.tb import RunEvents

METRIC_KEYS = {
    "val_acc1",
    "best_val_acc1",
    "val_acc5",
    "epochs",
    "wall_time_s",
    "train_images_per_s",
    "params",
    "bits_per_weight",
    "overrides",
    "status",
}


def only_run_dir(cwd: Path) -> Path:
    runs = list((cwd / "outputs" / "runs").iterdir())
    assert len(runs) == 1, runs
    return runs[0]


def test_xnor_two_epochs_writes_the_run_directory(tmp_path):
    r = run_cli(
        ["train", "data=synthetic", "model=resnet20", "quantizer=xnor", "trainer.max_epochs=2", *QUICK], tmp_path
    )
    assert r.returncode == 0, r.stderr[-3000:]
    run = only_run_dir(tmp_path)
    assert run.name.endswith("_resnet20_xnor_synthetic")
    assert (run / ".hydra" / "config.yaml").is_file() and (run / ".hydra" / "overrides.yaml").is_file()
    assert "OPs = BOPs/64 + FLOPs" in (run / "summary.txt").read_text() and (run / "summary.json").is_file()
    ckpts = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert "last.ckpt" in ckpts and any(n.startswith("epoch") for n in ckpts) and len(ckpts) == 2
    # last.ckpt is the last epoch whether or not it was the best one
    last = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert (last["epoch"], last["global_step"]) == (1, 32)
    m = read_metrics(run)
    assert set(m) >= METRIC_KEYS
    assert m["status"] == "completed" and m["epochs"] == 2 and m["global_step"] == 2 * 16
    assert m["bits_per_weight"] == 1.0 and m["params"]["binarized_weights"] == 267_264
    assert 0 <= m["val_acc1"] <= 100 and m["best_val_acc1"] >= m["val_acc1"] and m["val_acc5"] >= m["val_acc1"]
    assert m["train_images_per_s"] > 0 and m["wall_time_s"] > 0
    assert m["overrides"] == ["data=synthetic", "model=resnet20", "quantizer=xnor", "trainer.max_epochs=2", *QUICK]

    events = RunEvents(run)
    scalars, hists = set(events.Tags()["scalars"]), set(events.Tags()["histograms"])
    assert {"train/loss", "train/acc1", "val/loss", "val/acc1", "val/acc5", "lr-SGD"} <= scalars
    layers = [t.split("/", 1)[1] for t in scalars if t.startswith("angular_bias/")]
    assert len(layers) == 18
    for layer in layers:
        assert {f"quant_error/{layer}", f"flip_rate/{layer}"} <= scalars
        assert f"latent_weight/{layer}" in hists
    bias = events.Scalars(f"angular_bias/{layers[0]}")[0].value
    assert 20 < bias < 50  # the angle(w, sign w) in degrees: 37.0 for Gaussian weights
    assert len(events.Scalars("lr-SGD")) == 2


def test_fp_and_xnor_learn_in_one_sweep(tmp_path):
    sweep = tmp_path / "sweep"
    r = run_cli(
        [
            "train",
            "-m",
            "quantizer=fp,xnor",
            "data=synthetic",
            "trainer.max_epochs=4",
            f"hydra.sweep.dir={sweep}",
            *QUICK,
        ],
        tmp_path,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    runs = sorted(p for p in sweep.iterdir() if p.is_dir())
    assert len(runs) == 2 and runs[0].name.startswith("0_") and "quantizer=fp" in runs[0].name
    assert runs[1].name.startswith("1_") and "quantizer=xnor" in runs[1].name
    results = {read_metrics(p)["quantizer"]: read_metrics(p) for p in runs}
    assert set(results) == {"fp", "xnor"}
    # 10 classes: chance is 10 %
    assert results["fp"]["best_val_acc1"] > 60, results["fp"]
    assert results["xnor"]["best_val_acc1"] > 40, results["xnor"]
    assert results["fp"]["bits_per_weight"] == 32.0 and results["xnor"]["bits_per_weight"] == 1.0


def test_default_sweep_lands_under_outputs_multiruns(tmp_path):
    r = run_cli(
        [
            "train",
            "-m",
            "quantizer=fp,xnor",
            "data=synthetic",
            "trainer.max_epochs=1",
            "trainer.limit_train_batches=2",
            "trainer.limit_val_batches=1",
            *QUICK,
        ],
        tmp_path,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    sweeps = list((tmp_path / "outputs" / "multiruns").iterdir())
    assert len(sweeps) == 1
    jobs = sorted(p.name for p in sweeps[0].iterdir() if p.is_dir())
    assert len(jobs) == 2 and "quantizer=fp" in jobs[0] and "quantizer=xnor" in jobs[1]
    assert all(read_metrics(p)["status"] == "completed" for p in sweeps[0].iterdir() if p.is_dir())


def test_cifar_format_folder_end_to_end(tmp_path, cifar_root):
    run = tmp_path / "run"
    r = run_cli(
        [
            "train",
            "data=cifar10",
            f"data.root={cifar_root}",
            "data.batch_size=64",
            "data.eval_batch_size=64",
            "trainer.max_epochs=1",
            f"hydra.run.dir={run}",
            *QUICK,
        ],
        tmp_path,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    m = read_metrics(run)
    assert m["status"] == "completed" and m["data"] == "cifar10" and m["global_step"] == 5  # 320 images / 64
    assert m["val_acc1"] is not None


def test_resume_after_kill_finishes_the_same_run(tmp_path):
    run = tmp_path / "run"
    args = [
        "train",
        "data=synthetic",
        "trainer.max_epochs=4",
        "trainer.limit_train_batches=4",
        "trainer.limit_val_batches=1",
        f"hydra.run.dir={run}",
        *QUICK,
    ]
    proc = subprocess.Popen([str(BIN), *args], cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last = run / "checkpoints" / "last.ckpt"
    deadline = time.time() + 240
    while not last.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # let the checkpoint write finish
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = torch.load(last, map_location="cpu", weights_only=False)["epoch"]
    assert killed_at < 3, "the run finished before it could be killed"
    saved_overrides = (run / ".hydra" / "overrides.yaml").read_bytes()

    r = run_cli(["train", f"resume={run}"], tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    m = read_metrics(run)
    assert m["status"] == "completed" and m["epochs"] == 4 and m["global_step"] == 16
    ckpt = torch.load(last, map_location="cpu", weights_only=False)
    assert ckpt["global_step"] == 16 and ckpt["epoch"] == 3
    assert (run / ".hydra" / "overrides.yaml").read_bytes() == saved_overrides  # not overwritten
    assert not (tmp_path / "outputs").exists()  # no second run directory


class TestBadInput:
    """Each bad input: exit code 2 (1 when found inside the run), one line naming the problem
    and the fix, no traceback, nothing written."""

    def one_line(self, r: subprocess.CompletedProcess, code: int = 2) -> str:
        assert r.returncode == code, (r.returncode, r.stderr[-2000:])
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1, r.stderr[-2000:]
        assert "Traceback" not in r.stderr
        return lines[0]

    @pytest.mark.parametrize(
        "args,expected",
        [
            (["quantizer=xnr"], "unknown quantizer option 'xnr'; choose one of: " + ", ".join(quantizer_names())),
            (["model=resnet21"], "unknown model option 'resnet21'"),
            (["quantizer.act_scal=K"], "unknown key quantizer.act_scal"),
            (["data=synthetic", "data.batch_size=lots"], "bad value for data.batch_size"),
            (["data=synthetic", "schedule.lr=0"], "schedule.lr must be > 0"),
            (["data=synthetic", "trainer.max_epochs=0"], "trainer.max_epochs must be >= 1"),
            (["data=synthetic", "quantizer.weight_grad=magic"], "choose one of: exact, paper, detached"),
            (["data=synthetic", "quantizer=fp,xnor"], "is a sweep; fix: add -m"),
            (["data=cifar10", "data.root=/nonexistent/cifar"], "CIFAR-10 not found"),
            (["data=imagefolder", "data.root=/nonexistent/folder"], "no train/ folder"),
        ],
    )
    def test_bad_config_or_data(self, tmp_path, args, expected):
        line = self.one_line(run_cli(["train", *args], tmp_path))
        assert expected in line and line.startswith("binexp: error: ")
        assert not (tmp_path / "outputs").exists()

    def test_bad_value_in_a_sweep_fails_before_any_job(self, tmp_path):
        line = self.one_line(run_cli(["train", "-m", "data=synthetic", "schedule.lr=0.1,-1"], tmp_path))
        assert "schedule.lr must be > 0" in line
        assert not (tmp_path / "outputs").exists()

    def test_unknown_verb(self, tmp_path):
        assert "unknown verb 'trian'" in self.one_line(run_cli(["trian"], tmp_path))

    def test_default_main_job_offline_says_how_to_get_cifar(self, tmp_path):
        line = self.one_line(run_cli(["train"], tmp_path, env={"BINEXP_DATA": str(tmp_path / "data")}))
        assert "CIFAR-10 not found" in line and "data.download=true" in line

    def test_corrupt_dataset(self, tmp_path, cifar_root):
        (cifar_root / "cifar-10-batches-py" / "data_batch_2").write_bytes(b"\x80garbage")
        run = tmp_path / "run"
        r = run_cli(["train", f"data.root={cifar_root}", f"hydra.run.dir={run}", *QUICK], tmp_path)
        assert r.returncode == 1 and "Traceback" not in r.stderr
        assert "data_batch_2 is corrupt" in r.stderr.strip().splitlines()[-1]
        assert r.stderr.count("binexp: error:") == 1
        assert not run.exists()  # bad input found when training starts leaves nothing behind

    def test_resume_without_a_run(self, tmp_path):
        assert "no run directory at" in self.one_line(run_cli(["train", f"resume={tmp_path / 'nope'}"], tmp_path))

    def test_resume_without_checkpoint(self, tmp_path):
        (tmp_path / "run" / ".hydra").mkdir(parents=True)
        (tmp_path / "run" / ".hydra" / "overrides.yaml").write_text("- data=synthetic\n")
        line = self.one_line(run_cli(["train", f"resume={tmp_path / 'run'}"], tmp_path))
        assert "nothing to resume" in line and "last.ckpt does not exist" in line

    def test_resume_with_corrupt_checkpoint(self, tmp_path):
        (tmp_path / "run" / ".hydra").mkdir(parents=True)
        (tmp_path / "run" / ".hydra" / "overrides.yaml").write_text("- data=synthetic\n")
        (tmp_path / "run" / "checkpoints").mkdir()
        (tmp_path / "run" / "checkpoints" / "last.ckpt").write_bytes(b"PK\x03\x04 truncated")
        line = self.one_line(run_cli(["train", f"resume={tmp_path / 'run'}"], tmp_path))
        assert "is corrupt" in line
        assert (tmp_path / "run" / "checkpoints" / "last.ckpt").read_bytes() == b"PK\x03\x04 truncated"

    def test_run_dir_holding_a_run_is_not_overwritten(self, tmp_path):
        (tmp_path / "run").mkdir()
        (tmp_path / "run" / "metrics.json").write_text("{}")
        line = self.one_line(run_cli(["train", "data=synthetic", f"hydra.run.dir={tmp_path / 'run'}"], tmp_path))
        assert "already holds a run" in line and (tmp_path / "run" / "metrics.json").read_text() == "{}"


@pytest.mark.parametrize("decode", ["pil", "tensor"])
def test_imagefolder_end_to_end(tmp_path, imagefolder_root, decode):
    run = tmp_path / "run"
    r = run_cli(
        [
            "train",
            "data=imagefolder",
            f"data.root={imagefolder_root}",
            "data.image_size=32",
            f"data.decode={decode}",
            "data.num_workers=0",
            "data.batch_size=6",
            "data.eval_batch_size=6",
            "trainer.max_epochs=1",
            f"hydra.run.dir={run}",
            *QUICK,
        ],
        tmp_path,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    m = read_metrics(run)
    assert m["status"] == "completed" and m["global_step"] == 3  # 18 images / 6 (last batch dropped: none)
