"""The custom-scalars layout and the HParams entry of a run, as data."""

from binexp.lit.tb_views import METHOD_WIDE, hparams_of, layout


def charts(lay: dict) -> dict[str, tuple[str, list[str]]]:
    return {title: (category, spec[1]) for category, cs in lay.items() for title, spec in cs.items()}


def test_one_chart_per_statistic_grouped_by_method():
    c = charts(
        layout(
            [
                "angular_bias",
                "quant_error",
                "rbnn_cos_after",
                "rbnn_objective_round3",
                "flexor_s_tanh",
                *METHOD_WIDE,
                "flip_rate",
            ]
        )
    )
    assert c["angular_bias"] == ("binarized weights, every layer", ["^angular_bias/"])
    assert c["rbnn_cos_after"] == ("RBNN, every layer", ["^rbnn_cos_after/"])
    assert c["rbnn_objective_round3"] == ("RBNN, every layer", ["^rbnn_objective_round3/"])
    assert c["flexor_s_tanh"] == ("FleXOR, every layer", ["^flexor_s_tanh/"])
    assert not set(METHOD_WIDE) & set(c)  # logged once as method/<name>: one chart for all of them
    assert c["method/rbnn_t"] == ("method-wide", ["^method/rbnn_t$"]) and c["method/rbnn_k"][1] == ["^method/rbnn_k$"]
    assert c["top-1 (%)"][1] == ["^train/acc1$", "^val/acc1$", "^val/acc1_best$"]
    # anchored patterns: a statistic's chart never takes another statistic whose name contains it
    import re

    assert not re.match(c["angular_bias"][1][0], "act_angular_bias/layer1.0.conv1")
    assert not re.match(c["quant_error"][1][0], "quant_error_rotated/layer1.0.conv1")


def test_hparams_are_choices_and_overrides_without_paths_or_display_flags():
    static = {
        "choices": {
            "quantizer": "rbnn",
            "model": "resnet20",
            "data": "cifar10",
            "schedule": "rbnn_cifar",
            "experiment": None,
        },
        "seed": 3,
        "max_epochs": 1000,
        "overrides": [
            "quantizer=rbnn",
            "quantizer.rounds=1",
            "seed=3",
            "data.root=/datasets/cifar10",
            "trainer.enable_progress_bar=false",
            "hydra.sweep.dir=x",
            "+quantizer.extra=2",
            "verbose=true",
        ],
    }
    assert hparams_of(static) == {
        "experiment": "none",
        "quantizer": "rbnn",
        "model": "resnet20",
        "data": "cifar10",
        "schedule": "rbnn_cifar",
        "seed": "3",
        "max_epochs": "1000",
        "quantizer.rounds": "1",
        "quantizer.extra": "2",
    }
