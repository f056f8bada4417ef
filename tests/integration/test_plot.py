"""binexp plot: each figure from hand-written TensorBoard events (fast, exact series), its
one-line errors, and (slow) every figure of a real tiny RBNN run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from binexp.analysis.plots import draw
from binexp.cli import main
from tests.conftest import QUICK, run_cli

LAYERS = ["layer1.0.conv1", "layer2.0.conv1", "layer3.0.conv1"]


def fake_run(
    d: Path,
    epochs: int = 3,
    steps_per_epoch: int = 5,
    subfolder: str = "",
    act: bool = False,
    rotated: bool = True,
    overrides: list[str] | None = None,
    metrics: dict | None = None,
) -> Path:
    """A run dir whose events hold what LayerDiagnostics logs, at global steps; values encode
    (layer index, epoch) so the drawn series can be checked exactly."""
    import numpy as np
    from torch.utils.tensorboard import SummaryWriter

    d.mkdir(parents=True)
    record = {
        "status": "completed",
        "overrides": overrides or [],
        "epochs": epochs,
        "global_step": epochs * steps_per_epoch,
        "best_val_acc1": 50.0,
        **(metrics or {}),
    }
    (d / "metrics.json").write_text(json.dumps(record))
    w = SummaryWriter(str(d / "tensorboard" / subfolder))
    rng = np.random.default_rng(0)
    for e in range(epochs):
        step = (e + 1) * steps_per_epoch
        w.add_scalar("epoch", e, step)
        for i, layer in enumerate(LAYERS):
            w.add_scalar(f"quant_error/{layer}", 0.3 + 0.01 * i + 0.001 * e, step)
            if rotated:
                w.add_scalar(f"quant_error_rotated/{layer}", 0.2 + 0.01 * i, step)
            w.add_scalar(f"rbnn_alpha_mean/{layer}", 1.0 - 0.1 * e, step)
            w.add_scalar(f"angular_bias/{layer}", 0.8 + 0.01 * e, step)
            if act:
                w.add_scalar(f"act_angular_bias/{layer}", 0.7 + 0.01 * e, step)
            w.add_histogram(f"latent_weight/{layer}", rng.normal(0, 1 + e, 500), step)
    w.close()
    return d


def test_quant_error_per_layer_with_and_without_rotation(tmp_path):
    run = fake_run(tmp_path / "run", subfolder="version_0")  # events in a subfolder are found
    paths, series = draw("quant_error", run, tmp_path / "out")
    assert paths == [tmp_path / "out" / "quant_error.png"] and paths[0].read_bytes()[:4] == b"\x89PNG"
    assert set(series) == {("run", "quant_error", 3), ("run", "quant_error_rotated", 3)}
    assert [v for _, v in series[("run", "quant_error", 3)]] == pytest.approx([0.302, 0.312, 0.322])
    assert [lay for lay, _ in series[("run", "quant_error_rotated", 3)]] == LAYERS
    _, series = draw("quant_error", run, tmp_path / "out", epochs=[1, 3])
    assert len(series) == 4


def test_alpha_and_angular_bias_one_picture_all_layers_x_in_epochs(tmp_path):
    run = fake_run(tmp_path / "run", act=True)
    paths, series = draw("alpha", run, tmp_path / "out")
    assert [p.name for p in paths] == ["alpha.png"] and len(series) == 3
    assert [(e, round(v, 6)) for e, v in series[("run", "rbnn_alpha_mean", LAYERS[0])]] == [
        (1, 1.0),
        (2, 0.9),
        (3, 0.8),
    ]
    paths, series = draw("angular_bias", run, tmp_path / "out")
    assert [p.name for p in paths] == ["angular_bias.png"]
    assert sorted({k[1] for k in series}) == ["act_angular_bias", "angular_bias"] and len(series) == 6  # two panels


def test_weight_hist_panels_and_epochs(tmp_path):
    run = fake_run(tmp_path / "run")
    paths, series = draw(
        "weight_hist", run, tmp_path / "out", layers=["layer1.0.conv1", "layer3.0.conv1"], epochs=[1, 3]
    )
    assert [p.name for p in paths] == ["weight_hist.png"]
    assert sorted(series) == [("run", lay, e) for lay in ("layer1.0.conv1", "layer3.0.conv1") for e in (1, 3)]
    for pts in series.values():  # a density: integrates to 1
        width = pts[1][0] - pts[0][0]
        assert sum(d for _, d in pts) * width == pytest.approx(1.0)
    spread = {e: max(x for x, d in series[("run", "layer1.0.conv1", e)] if d > 0) for e in (1, 3)}
    assert spread[3] > 2 * spread[1]  # N(0, 3) is wider than N(0, 1)
    _, series = draw("weight_hist", run, tmp_path / "out2")
    assert sorted({k[1] for k in series}) == sorted(LAYERS) and {k[2] for k in series} == {
        1,
        3,
    }  # first, middle, last; first/last epoch


def test_flexor_stanh_one_line_per_other_setting(tmp_path):
    sweep = tmp_path / "sweep"
    for s in (5, 10, 20):
        for n_in in (8, 16):
            for seed in (1, 2):
                d = sweep / f"{s}_{n_in}_{seed}"
                d.mkdir(parents=True)
                (d / "metrics.json").write_text(
                    json.dumps(
                        {
                            "status": "completed",
                            "best_val_acc1": s + n_in + seed,
                            "overrides": [
                                "quantizer=flexor",
                                f"quantizer.s_tanh={s}",
                                f"quantizer.n_in={n_in}",
                                f"seed={seed}",
                            ],
                        }
                    )
                )
    paths, series = draw("flexor_stanh", sweep, tmp_path / "out")
    assert paths[0].is_file()
    assert series == {
        "n_in=8": [(5.0, 14.5), (10.0, 19.5), (20.0, 29.5)],
        "n_in=16": [(5.0, 22.5), (10.0, 27.5), (20.0, 37.5)],
    }


def test_plot_errors_are_one_line(tmp_path, capsys):
    fake_run(tmp_path / "run")
    assert main(["plot", str(tmp_path / "run"), "histos"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown figure 'histos'; choose one of: quant_error, weight_hist, alpha" in err
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "metrics.json").write_text(json.dumps({"status": "completed"}))
    for fig in ("alpha", "flexor_ntap", "weight_hist"):
        assert main(["plot", str(bare), fig]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("binexp: error: plot: ")
    assert main(["plot", str(tmp_path / "run"), "weight_hist", "--layers", "fc"]) == 2
    assert "no layer fc" in capsys.readouterr().err
    assert main(["plot", str(tmp_path / "nowhere"), "alpha"]) == 2
    assert not (tmp_path / "run" / "figures").exists()


def test_plot_verb_writes_into_the_run_by_default(tmp_path, capsys):
    run = fake_run(tmp_path / "run", rotated=False)
    assert main(["plot", str(run), "quant_error"]) == 0
    assert capsys.readouterr().out.strip() == f"wrote {run / 'figures' / 'quant_error.png'}"


@pytest.mark.slow
def test_every_figure_of_a_real_rbnn_sweep(tmp_path):
    sweep = tmp_path / "sweep"
    r = run_cli(
        [
            "train",
            "-m",
            "quantizer=rbnn,xnor",
            "data=synthetic",
            "trainer.max_epochs=2",
            "trainer.limit_train_batches=2",
            "trainer.limit_val_batches=1",
            *QUICK,
            f"hydra.sweep.dir={sweep}",
        ],
        tmp_path,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    _, series = draw("quant_error", sweep, tmp_path / "out")
    assert {k[0] for k in series} == {"quantizer=rbnn", "quantizer=xnor"} and all(len(v) == 18 for v in series.values())
    paths, series = draw("alpha", sweep, tmp_path / "out")  # only the RBNN run has alpha
    assert [p.name for p in paths] == ["alpha.png"] and len(series) == 18
    assert all([e for e, _ in pts] == [1, 2] for pts in series.values())
    paths, series = draw("angular_bias", sweep, tmp_path / "out")
    assert len(paths) == 2 and len(series) == 2 * 18 * 2  # 2 runs x 18 layers x (weights, activations)
    assert {k[1] for k in series} == {"angular_bias", "act_angular_bias"}
    paths, series = draw("weight_hist", sweep, tmp_path / "out", epochs=[1, 2])
    assert len(paths) == 2 and len(series) == 2 * 3 * 2
    r = run_cli(["report", str(sweep), "--plot", str(tmp_path / "rep")], tmp_path)
    assert r.returncode == 0 and (tmp_path / "rep" / "val_curves.png").is_file()
