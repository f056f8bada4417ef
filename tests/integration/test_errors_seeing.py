"""Errors that do not mislead (issue 12): a sweep's error names the job and the value at fault and
never advises ``+key=`` for a key another option of the sweep has; "did you mean" for misspelt
keys, trainer arguments and group options. In-process through ``binexp.cli.main``."""

from __future__ import annotations

import dataclasses

import pytest

from binexp.cli import main
from binexp.quant.registry import get_quantizer, quantizer_names


def error_line(capsys, args: list[str], tmp_path, monkeypatch) -> str:
    monkeypatch.chdir(tmp_path)
    for var in ("BINEXP_VERB", "BINEXP_SWEPT_KEYS"):  # cmd_train sets them: undone after the test
        monkeypatch.setenv(var, "")
    code = main(args)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith("binexp: error: ") and not (tmp_path / "outputs").exists()
    return err[0]


def test_sweep_error_names_the_job_and_does_not_advise_plus_key(capsys, tmp_path, monkeypatch):
    line = error_line(
        capsys,
        ["train", "-m", "quantizer=fp,xnor", "quantizer.weight_grad=bogus", "data=synthetic"],
        tmp_path,
        monkeypatch,
    )
    assert line.startswith("binexp: error: in the sweep job quantizer=fp: ")
    owners = [  # the methods whose schema has the key (the list grows with the registry)
        n for n in quantizer_names() if "weight_grad" in {f.name for f in dataclasses.fields(get_quantizer(n).schema)}
    ]
    assert (
        f"weight_grad is a key of quantizer={', '.join(owners)} only" in line and "+quantizer.weight_grad" not in line
    )
    assert "(2 of the 2 sweep jobs checked fail)" in line  # xnor's job fails too, on the value


def test_sweep_error_names_the_value_at_fault(capsys, tmp_path, monkeypatch):
    line = error_line(
        capsys,
        ["train", "-m", "quantizer=xnor,bireal", "quantizer.weight_grad=bogus", "data=synthetic"],
        tmp_path,
        monkeypatch,
    )
    assert line.startswith("binexp: error: in the sweep job quantizer=xnor: quantizer.weight_grad='bogus' is not valid")


@pytest.mark.parametrize(
    "args,expected",
    [
        (["trainer.max_epoch=3"], "unknown key trainer.max_epoch; did you mean trainer.max_epochs?"),
        (["trainer.fast_dev_rn=1"], "unknown key trainer.fast_dev_rn; did you mean +trainer.fast_dev_run?"),
        (
            ["quantizer=rbn"],
            (
                f"unknown quantizer option 'rbn'; choose one of: {', '.join(quantizer_names())}; "
                "did you mean quantizer=rbnn"  # (the list grows with the registry)
            ),
        ),
        (
            ["quantizer=rbnn", "quantizer.alpha_mod=fixed"],
            "unknown key quantizer.alpha_mod; did you mean quantizer.alpha_mode",
        ),
        (["model.bn_gama_init=1"], "unknown key model.bn_gama_init; did you mean model.bn_gamma_init"),
        (["schedule=rbnn_cifr"], "did you mean schedule=rbnn_cifar"),
        (["schedule.lr_schedul=cosine"], "did you mean schedule.lr_schedule?"),
        (["quantizr=rbnn"], "unknown key quantizr; did you mean quantizer=rbnn?"),
        (["+trainer.max_epoch=1"], "unknown trainer option trainer.max_epoch; did you mean trainer.max_epochs"),
    ],
)
def test_did_you_mean(capsys, tmp_path, monkeypatch, args, expected):
    line = error_line(capsys, ["train", "data=synthetic", *args], tmp_path, monkeypatch)
    assert expected in line and "+key" not in line


def test_no_suggestion_without_a_close_name_keeps_the_plus_key_advice(capsys, tmp_path, monkeypatch):
    line = error_line(capsys, ["train", "data=synthetic", "quantizer.zzzzzz=1"], tmp_path, monkeypatch)
    assert "unknown key quantizer.zzzzzz" in line and "did you mean" not in line and "+quantizer.zzzzzz=" in line
