"""The schemas read from source (binexp.schema_source, what the torch-free config check composes
and validates with) are the imported ones: the same groups and names, the same defaults, the same
``__post_init__`` answers to good and bad values."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

from binexp import schema_source
from binexp.config import schema_defaults
from tests.conftest import HANG_LIMIT


def imported_schemas() -> dict[str, dict[str, type]]:
    from binexp.config import DistillConfig
    from binexp.data.registry import DATASETS
    from binexp.models.registry import ModelConfig
    from binexp.optimizer import ScheduleConfig
    from binexp.quant import QUANTIZERS

    return {
        "quantizer": {n: e.schema for n, e in QUANTIZERS.items()},
        "data": {k: e.schema for k, e in DATASETS.items()},
        "model": {"model": ModelConfig},
        "schedule": {"schedule": ScheduleConfig},
        "distill": {"distill": DistillConfig},
    }


def test_every_schema_is_read_with_the_imported_defaults():
    light, real = schema_source.schemas(), imported_schemas()
    assert {g: sorted(v) for g, v in light.items()} == {g: sorted(v) for g, v in real.items()}
    assert len(light["quantizer"]) >= 14 and len(light["data"]) >= 5
    for group, entries in real.items():
        for name, schema in entries.items():
            read = light[group][name]
            assert read is not schema and read.__name__ == schema.__name__
            assert [f.name for f in dataclasses.fields(read)] == [f.name for f in dataclasses.fields(schema)]
            assert schema_defaults(read) == schema_defaults(schema), (group, name)


def _error(schema: type, **values) -> str | None:
    try:
        schema(**values)
    except (ValueError, TypeError) as e:
        return str(e)
    return None


@pytest.mark.parametrize(
    "group,name,values",
    [
        ("quantizer", "xnor", {"weight_grad": "exactt"}),  # a choice value: did you mean
        ("quantizer", "rbnn", {"rotation_kind": "kron"}),
        ("quantizer", "xnor", {"weight_surrogate": "approx_sing"}),  # the surrogates, from the catalog
        ("quantizer", "flexor", {"n_in": 3, "n_out": 2}),
        ("quantizer", "dorefa", {"weight_bits": 0}),
        ("model", "model", {"name": "resnet2"}),  # the models, from the catalog
        ("model", "model", {"act": "relu7"}),  # the activations, from the catalog
        ("model", "model", {"width": -1.0}),
        ("schedule", "schedule", {"optimizer": "sgdd"}),
        ("data", "cifar", {"batch_size": 0}),
        ("distill", "distill", {"weight": 2.0}),
        ("quantizer", "xnor", {}),  # the defaults: no error in either
    ],
)
def test_the_checks_answer_the_same(group, name, values):
    real = imported_schemas()[group][name]
    light = schema_source.schemas()[group][name]
    assert _error(light, **values) == _error(real, **values)
    if values:
        assert _error(real, **values) is not None, values  # a value the schema refuses


TYPOS = [
    (["train", "quantizer=xnr"], "did you mean quantizer=xnor"),
    (["train", "quantizer.weight_grad=exactt"], "did you mean quantizer.weight_grad=exact"),
    (["train", "trainer.max_epoch=3"], "did you mean trainer.max_epochs"),
    (["train", "+trainer.max_epoch=3"], "did you mean trainer.max_epochs"),
    (["train", "lr=0.1"], "did you mean schedule.lr=0.1"),
    (["train", "model.widht=2"], "did you mean model.width"),
    (["train", "quantizr=xnor"], "did you mean quantizer=xnor"),
]
NO_TORCH = (
    "import sys\nfrom binexp.cli import main\ncode = main({args!r})\n"
    "heavy = [m for m in ('torch', 'lightning', 'torchvision') if m in sys.modules]\n"
    "print('HEAVY', heavy, code)\n"
)


def fresh_interpreter(args: list[str], cwd) -> subprocess.CompletedProcess:
    """``binexp <args>`` in a fresh interpreter, as a user runs it; prints which heavy modules it imported."""
    return subprocess.run(
        [sys.executable, "-c", NO_TORCH.format(args=args)], capture_output=True, text=True, timeout=HANG_LIMIT, cwd=cwd
    )


@pytest.mark.parametrize("args,hint", TYPOS)
def test_a_config_typo_is_answered_without_importing_torch(args, hint, tmp_path):
    """A fresh interpreter (as a user runs it): the did-you-mean line, exit 2, and neither torch
    nor Lightning in ``sys.modules`` afterwards."""
    r = fresh_interpreter(args, tmp_path)
    assert "HEAVY [] 2" in r.stdout, (r.stdout[-2000:], r.stderr[-2000:])
    assert hint in r.stderr and r.stderr.startswith("binexp: error: "), r.stderr[-2000:]


def test_cfg_job_prints_the_config_without_importing_torch(tmp_path):
    """``binexp train --cfg job``: Hydra prints the composed config and returns; the training code
    (torch, Lightning) is never imported."""
    r = fresh_interpreter(["train", "--cfg", "job", "quantizer=rbnn", "data=synthetic"], tmp_path)
    assert "HEAVY [] 0" in r.stdout, (r.stdout[-2000:], r.stderr[-2000:])
    assert "name: rbnn" in r.stdout and "kind: synthetic" in r.stdout and "rotation_kind: bi" in r.stdout, r.stdout


def test_trainer_arguments_read_from_source_are_lightnings():
    import inspect

    from lightning.pytorch import Trainer

    assert schema_source.trainer_arguments() == set(inspect.signature(Trainer.__init__).parameters) - {"self"}


def test_cfg_job_resolve_prints_resolved_values_without_importing_torch(tmp_path):
    """``--resolve`` takes the same torch-free path: ``trainer.max_epochs: ${schedule.epochs}``
    printed as the number, the sweep resolvers registered by binexp.runs.sweep."""
    r = fresh_interpreter(["train", "--cfg", "all", "--resolve", "data=synthetic"], tmp_path)
    assert "HEAVY [] 0" in r.stdout, (r.stdout[-2000:], r.stderr[-2000:])
    assert "max_epochs: 1000" in r.stdout and "${" not in r.stdout, r.stdout[-2000:]
    assert "dir: outputs/runs/" in r.stdout and "_resnet20_xnor_synthetic" in r.stdout


@pytest.mark.parametrize("extra", [["-p", "hydra.job"], ["hydra.run.dir=run"]])
def test_cfg_hydra_resolve_prints_when_nothing_needs_the_job(extra, tmp_path):
    """``--cfg hydra --resolve`` alone is refused in one line (hydra.run.dir reads ${name}); with one
    package (-p) or the run directory given it resolves and prints, as Hydra does."""
    r = fresh_interpreter(["train", "--cfg", "hydra", "--resolve", *extra, "data=synthetic"], tmp_path)
    assert "HEAVY [] 0" in r.stdout, (r.stdout[-2000:], r.stderr[-2000:])
    assert "${" not in r.stdout and "Traceback" not in r.stderr, r.stdout[-2000:]
