"""binexp list / --version / --help answer without importing torch, and the static catalog they
read agrees with the registries the training code imports."""

from __future__ import annotations

import subprocess
import sys

from binexp import source_index as catalog
from binexp.cli import main
from tests.conftest import HANG_LIMIT

NO_HEAVY = (
    "import sys; from binexp.cli import main; main({args!r}); "
    "heavy = [m for m in ('torch', 'lightning', 'hydra', 'omegaconf') if m in sys.modules]; "
    "assert not heavy, heavy"
)


def test_catalog_matches_the_registries():
    from binexp.data import dataset_kinds
    from binexp.models import MODELS
    from binexp.quant import QUANTIZERS
    from binexp.quant.sign import SURROGATES

    assert catalog.quantizers() == {n: e.summary for n, e in QUANTIZERS.items()}
    assert catalog.models() == {n: e.summary for n, e in MODELS.items()}
    from binexp.models import activation_names

    assert sorted(catalog.activations()) == activation_names()
    assert catalog.surrogates() == {n: (c.__doc__ or "").strip().splitlines()[0] for n, c in SURROGATES.items()}
    assert catalog.dataset_kinds() == dataset_kinds()


def test_list_help_and_version_import_nothing_heavy():
    for args in (["list"], ["list", "experiment"], ["--help"], ["--version"]):
        r = subprocess.run(
            [sys.executable, "-c", NO_HEAVY.format(args=args)], capture_output=True, text=True, timeout=HANG_LIMIT
        )
        assert r.returncode == 0, (args, r.stderr[-2000:])


def test_version(capsys, monkeypatch):
    import binexp

    monkeypatch.setenv("BINEXP_VERB", "train")  # also inside a training process tree (DDP children)

    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"binexp {binexp.__version__}"


def test_list_experiment_shows_paper_table_and_value(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    assert main(["list", "experiment"]) == 0
    out = capsys.readouterr().out.splitlines()
    rows = {line.split()[0]: line for line in out[1:]}
    assert len(rows) == len(catalog.config_options("experiment"))
    row = rows["rbnn_cifar_resnet20"]
    assert "86.5   Lin et al. | Table 1 (CIFAR-10, W/A = 1/1), row RBNN" in row
    assert max(len(line) for line in out) <= 100  # one readable line per preset, cut to the terminal
    assert "88.23" in rows["flexor_resnet20_b04"] and "Table 1" in rows["flexor_resnet20_b04"]
    assert rows["flexor_fig5_ste"].split()[1] == "–"  # no paper value: a dash, not a number


def test_list_unknown_group_is_one_line(capsys):
    assert main(["list", "quantizers"]) == 2
    assert capsys.readouterr().err.strip() == (
        "binexp: error: unknown group 'quantizers'; did you mean binexp list quantizer?; choose one of: quantizer, "
        "model, data, schedule, experiment, activation, surrogate, trainer"
    )


def test_experiment_meta_reads_what_omegaconf_reads():
    from omegaconf import OmegaConf

    for name in catalog.config_options("experiment"):
        path = catalog.PACKAGE.parent / "conf" / "experiment" / f"{name}.yaml"
        expected = OmegaConf.to_container(OmegaConf.load(path)).get("meta") or {}
        assert catalog.experiment_meta(name) == expected, name
