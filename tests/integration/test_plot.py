"""binexp plot: each figure from hand-written TensorBoard events (fast, exact series), its
one-line errors, and (slow) every figure of a real tiny RBNN run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from binexp.analysis import plots
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
    scale: float = 1.0,
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
    for layer in LAYERS:  # before training (LayerDiagnostics.on_train_start)
        w.add_histogram(f"latent_weight/{layer}", rng.normal(0, 0.5, 500), 0)
    for e in range(epochs):
        step = (e + 1) * steps_per_epoch
        w.add_scalar("epoch", e, step)
        for i, layer in enumerate(LAYERS):
            w.add_scalar(f"quant_error/{layer}", scale * (0.3 + 0.01 * i + 0.001 * e), step)
            w.add_scalar(f"quant_error_unscaled/{layer}", scale * (60.0 + 100 * i), step)
            if rotated:
                w.add_scalar(f"quant_error_rotated/{layer}", 0.2 + 0.01 * i, step)
            w.add_scalar(f"rbnn_alpha_mean/{layer}", 1.0 - 0.1 * e, step)
            w.add_scalar(f"angular_bias/{layer}", 37.0 / scale + e, step)  # degrees, as logged
            if act:
                w.add_scalar(f"act_angular_bias/{layer}", 40.0 + e, step)
            w.add_histogram(f"latent_weight/{layer}", rng.normal(0, 1 + e, 500), step)
    w.close()
    return d


def test_quant_error_one_axis_per_family_log_where_decades(tmp_path, figs):
    run = fake_run(tmp_path / "run", subfolder="version_0")  # events in a subfolder are found
    paths, series = draw("quant_error", run, tmp_path / "out")
    assert paths == [tmp_path / "out" / "quant_error.png"] and paths[0].read_bytes()[:4] == b"\x89PNG"
    assert set(series) == {("run", f, 3) for f in ("quant_error", "quant_error_rotated", "quant_error_unscaled")}
    assert [v for _, v in series[("run", "quant_error", 3)]] == pytest.approx([0.302, 0.312, 0.322])
    assert [v for _, v in series[("run", "quant_error_unscaled", 3)]] == pytest.approx([60.0, 160.0, 260.0])
    assert [lay for lay, _ in series[("run", "quant_error_rotated", 3)]] == LAYERS
    scaled, unscaled = figs[-1]["axes"]
    assert "‖αb − w‖²" in scaled["ylabel"] and "lower" in scaled["ylabel"] and scaled["yscale"] == "linear"
    assert "‖b − w‖²" in unscaled["ylabel"] and "no scale" in unscaled["ylabel"]
    assert unscaled["yscale"] == "linear"  # 60..260: less than a decade
    assert sorted(scaled["legend"]) == ["rotated (epoch 3)", "w (epoch 3)"] and unscaled["legend"] == [
        "unscaled (epoch 3)"
    ]
    assert figs[-1]["texts"] == []  # real data, full scale: no note
    _, series = draw("quant_error", run, tmp_path / "out", epochs=[1, 3])
    assert len(series) == 6


def test_quant_error_rbnn_vs_xnor_on_one_picture(tmp_path, figs):
    sweep = tmp_path / "sweep"
    fake_run(sweep / "0", overrides=["quantizer=rbnn"], metrics={"data": "synthetic"}, scale=0.01)
    fake_run(sweep / "1", overrides=["quantizer=xnor"], rotated=False)
    paths, series = draw("quant_error", sweep, tmp_path / "out")
    assert len(paths) == 1
    assert set(series) == {
        ("quantizer=rbnn", "quant_error", 3),
        ("quantizer=rbnn", "quant_error_rotated", 3),
        ("quantizer=rbnn", "quant_error_unscaled", 3),
        ("quantizer=xnor", "quant_error", 3),
        ("quantizer=xnor", "quant_error_unscaled", 3),
    }
    scaled, unscaled = figs[-1]["axes"]
    assert scaled["yscale"] == "log" and unscaled["yscale"] == "log"  # 0.003..0.32 and 0.6..260 span decades
    assert (
        "quantizer=rbnn: w (epoch 3)" in scaled["legend"] and "quantizer=xnor: unscaled (epoch 3)" in unscaled["legend"]
    )
    assert figs[-1]["texts"] == ["drawn from synthetic data: only the shape means something"]


def test_alpha_and_angular_bias_one_picture_all_layers_x_in_epochs(tmp_path, figs):
    run = fake_run(tmp_path / "run", act=True)
    paths, series = draw("alpha", run, tmp_path / "out")
    assert [p.name for p in paths] == ["alpha.png"] and len(series) == 3
    assert [(e, round(v, 6)) for e, v in series[("run", "rbnn_alpha_mean", LAYERS[0])]] == [
        (1, 1.0),
        (2, 0.9),
        (3, 0.8),
    ]
    assert figs[-1]["axes"][0]["xticks"] == ["1", "2", "3"]  # whole epochs
    paths, series = draw("angular_bias", run, tmp_path / "out")
    assert [p.name for p in paths] == ["angular_bias.png"]
    assert sorted({k[1] for k in series}) == ["act_angular_bias", "angular_bias"] and len(series) == 6  # two panels
    # drawn as logged: the angle in degrees (higher = more bias)
    assert [v for _, v in series[("run", "angular_bias", LAYERS[0])]] == [37.0, 38.0, 39.0]
    weights, acts = figs[-1]["axes"]
    assert weights["ylabel"].startswith("weights: angle(w, sign w) in degrees") and "higher = more" in weights["ylabel"]
    assert acts["ylabel"].startswith("activations: angle(a, sign a)") and acts["ylim"] == weights["ylim"]


def test_angular_bias_compares_runs_on_one_picture(tmp_path, figs):
    sweep = tmp_path / "sweep"
    fake_run(sweep / "0", overrides=["quantizer=rbnn"], scale=1.2)  # 30.8 degrees: a smaller angle
    fake_run(sweep / "1", overrides=["quantizer=xnor"])
    paths, series = draw("angular_bias", sweep, tmp_path / "out")
    assert [p.name for p in paths] == ["angular_bias.png"] and len(figs[-1]["axes"]) == 1
    rbnn, xnor = series[("quantizer=rbnn", "angular_bias", "mean")], series[("quantizer=xnor", "angular_bias", "mean")]
    assert [e for e, _ in rbnn] == [1, 2, 3]
    assert [v for _, v in xnor] == pytest.approx([37.0 + e for e in range(3)], abs=1e-5)
    assert all(r < x for (_, r), (_, x) in zip(rbnn, xnor))  # RBNN less biased: lower
    assert figs[-1]["axes"][0]["legend"][0] == "quantizer=rbnn (mean)"


def test_a_resumed_job_keeps_its_sweep_label(tmp_path):
    """A sweep job finished with ``binexp train resume=<its dir>`` records resume=...; the legend
    still names the runs by their settings only."""
    sweep = tmp_path / "sweep"
    fake_run(sweep / "0", overrides=["quantizer=xnor", "hydra.sweep.dir=x"])
    fake_run(sweep / "1", overrides=["quantizer=rbnn", f"resume={sweep / '1'}", "verbose=true"], scale=1.2)
    _, series = draw("angular_bias", sweep, tmp_path / "out")
    assert {k[0] for k in series} == {"quantizer=xnor", "quantizer=rbnn"}


def test_weight_hist_panels_and_epochs(tmp_path, figs):
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
    # first, middle, last layer; before training (epoch 0, N(0, 0.5)) and the last epoch
    assert sorted({k[1] for k in series}) == sorted(LAYERS) and {k[2] for k in series} == {0, 3}
    spread0 = max(x for x, d in series[("run", "layer1.0.conv1", 0)] if d > 0)
    assert 1.0 < spread0 < 2.5 and figs[-1]["axes"][0]["legend"] == ["before training", "epoch 3"]


def test_weight_hist_says_what_latent_weight_means_per_method(tmp_path, figs):
    sweep = tmp_path / "sweep"
    fake_run(sweep / "0", overrides=["quantizer=rbnn"], metrics={"quantizer": "rbnn"})
    fake_run(sweep / "1", overrides=["quantizer=xnor"], metrics={"quantizer": "xnor"})
    paths, series = draw("weight_hist", sweep, tmp_path / "out")
    assert len(paths) == 1 and len(figs[-1]["axes"]) == 6  # one row per run
    assert {k[0] for k in series} == {"quantizer=rbnn", "quantizer=xnor"}
    assert plots.latent_meaning("rbnn").startswith("RBNN: w̃, the rotated, mixed, standardised weight")
    assert plots.latent_meaning("xnor").startswith("XNOR: the raw latent weight w")
    rbnn_row, xnor_row = figs[-1]["axes"][0], figs[-1]["axes"][3]
    assert rbnn_row["notes"] == [plots.latent_meaning("rbnn")] and xnor_row["notes"] == [plots.latent_meaning("xnor")]


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


def test_flexor_stanh_and_ntap_read_the_presets_of_a_table_sweep(tmp_path, figs):
    """The fig6/fig7 tables set S_tanh / N_tap in presets, not overrides: read the composed config;
    S_tanh (5..100) on a log axis with a tick at each value; the legend names the setting."""
    sweep = tmp_path / "sweep"
    for i, s in enumerate((5, 10, 20, 100)):
        d = sweep / str(i)
        d.mkdir(parents=True)
        record = {
            "status": "completed",
            "best_val_acc1": 80.0 + i,
            "quantizer": "flexor",
            "data": "synthetic",
            "choices": {"debug": "smoke"},
            "overrides": [f"experiment=flexor_fig6_stanh{s}", "debug=smoke"],
        }
        (d / "metrics.json").write_text(json.dumps(record))
    _, series = draw("flexor_stanh", sweep, tmp_path / "out")
    assert series == {
        "flexor, resnet32, n_in=8, n_out=10, n_tap=2": [(5.0, 80.0), (10.0, 81.0), (20.0, 82.0), (100.0, 83.0)]
    }
    ax = figs[-1]["axes"][0]
    assert ax["xscale"] == "log" and ax["xticks"] == ["5", "10", "20", "100"]
    assert figs[-1]["texts"] == [
        "drawn from synthetic data and smoke scale (debug=smoke: a few batches per epoch):"
        " only the shape means something"
    ]
    for i, t in enumerate((1, 2, 3, 4)):
        record = json.loads((sweep / str(i) / "metrics.json").read_text())
        record["overrides"] = [f"experiment=flexor_fig7_ntap{t}"]
        (sweep / str(i) / "metrics.json").write_text(json.dumps(record))
    _, series = draw("flexor_ntap", sweep, tmp_path / "out")
    assert list(series.values()) == [[(1.0, 80.0), (2.0, 81.0), (3.0, 82.0), (4.0, 83.0)]]
    assert figs[-1]["axes"][0]["xscale"] == "linear" and figs[-1]["axes"][0]["xticks"] == ["1", "2", "3", "4"]


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
    # one picture: 2 runs x 18 layers x (weights, activations), and each run's mean per panel
    assert len(paths) == 1 and len(series) == 2 * 18 * 2 + 2 * 2
    assert {k[1] for k in series} == {"angular_bias", "act_angular_bias"}
    assert all(0 < v < 90 for pts in series.values() for _, v in pts)  # an angle in degrees
    paths, series = draw("weight_hist", sweep, tmp_path / "out", epochs=[0, 2])  # 0: before training
    assert len(paths) == 1 and len(series) == 2 * 3 * 2
    r = run_cli(["report", str(sweep), "--plot", str(tmp_path / "rep")], tmp_path)
    assert r.returncode == 0 and (tmp_path / "rep" / "val_curves.png").is_file()
