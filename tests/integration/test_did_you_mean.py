"""A typo anywhere a user types a name gets one line with the closest valid spelling."""

from __future__ import annotations

import pytest

from binexp.cli import main as cli_main


@pytest.fixture(autouse=True)
def _no_verb_from_an_earlier_train(monkeypatch):
    # `binexp train` in this process sets BINEXP_VERB (for its DDP children): a later bare typo
    # would be read as a train argument
    for var in ("BINEXP_VERB", "BINEXP_SWEPT_KEYS"):
        monkeypatch.delenv(var, raising=False)


def one_line(capsys, args: list[str]) -> str:
    assert cli_main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("binexp: error: "), err
    return err[0]


@pytest.mark.parametrize(
    "args, expected",
    [
        (["reprot"], "unknown verb 'reprot'; did you mean binexp report or binexp export?"),
        (["list", "quantiser"], "unknown group 'quantiser'; did you mean binexp list quantizer?"),
        (["train", "--cfgg", "job"], "unknown flag --cfgg; did you mean --cfg?"),
        (["plot", ".", "quant_eror"], "plot: unknown figure 'quant_eror'; did you mean quant_error?"),
        # an argument without '=': a path (summary --run, resume=) or a bare word
        (["summary", "outputs/runs/x"], "'outputs/runs/x' is a path, not a key=value override; fix: "),
        (["train", "data=synthetic", "outputs/runs/x"], "--run <dir> (summary)"),
        (["train", "data=synthetic", "job"], "'job' is not a key=value override; fix: write key=value"),
        # flag pairs Hydra answered with a traceback
        (["train", "data=synthetic", "--cfg", "hydra", "--resolve"], "--cfg hydra --resolve: hydra.* interpolates"),
        (["train", "data=synthetic", "-m", "--cfg", "job", "quantizer=xnor,rbnn"], "-m with --cfg: Hydra prints one"),
        (["train", "data=synthetic", "-m", "--info", "quantizer=xnor,rbnn"], "-m with --info: "),
    ],
)
def test_names_typed_before_any_config(capsys, tmp_path, monkeypatch, args, expected):
    monkeypatch.chdir(tmp_path)
    assert expected in one_line(capsys, args)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    "override, expected",
    [
        ("max_epochs=3", "unknown key max_epochs; did you mean trainer.max_epochs=3?"),
        ("lr=0.1", "unknown key lr; did you mean schedule.lr=0.1?"),
        ("quantizer.weight_grad=exactt", "did you mean quantizer.weight_grad=exact?"),
        ("+trainer.max_epoch=3", "unknown trainer option trainer.max_epoch; did you mean trainer.max_epochs"),
        ("+trainer.logger=false", "trainer.logger is binexp's to set; fix: use logger=<name>"),
    ],
)
def test_config_typos_point_to_the_key_or_value(capsys, tmp_path, monkeypatch, override, expected):
    monkeypatch.chdir(tmp_path)
    assert expected in one_line(capsys, ["train", "data=synthetic", override])
    assert not any(tmp_path.iterdir())


def test_a_long_group_names_the_closest_options_not_all(capsys, tmp_path, monkeypatch):
    # 113 experiments: the whole list made a 2,700-character line that hid the suggestion
    monkeypatch.chdir(tmp_path)
    line = one_line(capsys, ["train", "experiment=flexor_fig6_stanh_5"])
    assert line.startswith("binexp: error: unknown experiment option 'flexor_fig6_stanh_5'; did you mean ")
    assert "experiment=flexor_fig6_stanh5" in line and "options: binexp list experiment)" in line
    assert len(line) < 200, len(line)
    line = one_line(capsys, ["train", "experiment=zzzz"])
    assert "fix: pick one of the " in line and len(line) < 200
    # a short group still lists every option
    assert "choose one of: adabin, bireal, " in one_line(capsys, ["train", "quantizer=xnr"])
    assert not any(tmp_path.iterdir())
