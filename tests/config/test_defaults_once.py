"""Each default is stated once, in the dataclass schemas (``binexp.config.schemas``): an option YAML
starts from its schema (``defaults: [/_schema/<group>/<name>@_here_, _self_]``) and states only what
differs from it; an experiment preset (or debug option) states only what differs from the options it
selects. The YAML files are found on disk, so an option or preset added later is checked too."""

from __future__ import annotations

import dataclasses
from functools import cache
from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from binexp.config import SCHEMA_GROUP, schema_defaults, schemas
from binexp.preflight import compose
from binexp.source_index import conf_dir

CONF = conf_dir()
SCHEMA_GROUPS = sorted(g for g in schemas() if (CONF / g).is_dir())
OPTIONS = [p for g in SCHEMA_GROUPS for p in sorted((CONF / g).glob("*.yaml"))]
PRESETS = [p for g in ("experiment", "debug") for p in sorted((CONF / g).glob("*.yaml"))]


def same(a, b) -> bool:
    """YAML-level equality: 1e-4 == 0.0001, 1 == 1.0, but true != 1; lists element by element."""
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    numbers = (int, float)
    if isinstance(a, numbers) and isinstance(b, numbers) and not isinstance(a, bool) and not isinstance(b, bool):
        return float(a) == float(b)
    return type(a) is type(b) and a == b


def leaves(node: dict, prefix: str = ""):
    for key, value in node.items():
        if isinstance(value, dict) and value:
            yield from leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def lookup(node, dotted: str):
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return KeyError
        node = node[part]
    return node


def restated(values: dict, defaults: dict) -> list[str]:
    return [key for key, value in leaves(values) if same(value, lookup(defaults, key))]


def schema_of(path: Path) -> type:
    """The schema an option YAML starts from (its ``/_schema/<group>/<name>`` defaults entry)."""
    group = path.parent.name
    data = yaml.safe_load(path.read_text()) or {}
    entries = [str(e).split("@", 1)[0] for e in data.get("defaults") or [] if isinstance(e, str)]
    starts = [e for e in entries if e.startswith(f"/{SCHEMA_GROUP}/{group}/")]
    assert len(starts) == 1, (
        f"conf/{group}/{path.name} must start from its schema: defaults: [/{SCHEMA_GROUP}/{group}/<name>@_here_, "
        f"_self_] with <name> one of {sorted(schemas()[group])}"
    )
    name = starts[0].rsplit("/", 1)[1]
    assert name in schemas()[group], (
        f"conf/{group}/{path.name}: no schema {starts[0]}; one of {sorted(schemas()[group])}"
    )
    return schemas()[group][name]


@pytest.mark.parametrize("path", OPTIONS, ids=[f"{p.parent.name}/{p.stem}" for p in OPTIONS])
def test_option_yaml_states_only_what_differs_from_its_schema(path):
    schema = schema_of(path)
    data = {k: v for k, v in (yaml.safe_load(path.read_text()) or {}).items() if k != "defaults"}
    unknown = sorted(set(data) - {f.name for f in dataclasses.fields(schema)})
    assert not unknown, f"conf/{path.parent.name}/{path.name}: {unknown} are not fields of {schema.__name__}"
    again = restated(data, schema_defaults(schema))
    assert not again, (
        f"conf/{path.parent.name}/{path.name} restates the default of {schema.__name__} for {again}; "
        f"fix: delete those lines (the dataclass is the one place a default and its meaning live)"
    )


def test_train_yaml_states_no_schema_default():
    data = yaml.safe_load((CONF / "train.yaml").read_text())
    for group, entries in schemas().items():
        if group in data and len(entries) == 1:
            [schema] = entries.values()
            assert not restated(data[group], schema_defaults(schema)), group


@cache
def composed(selections: tuple[str, ...]) -> dict:
    cfg = compose(list(selections))
    container = OmegaConf.to_container(cfg, resolve=False)
    assert isinstance(container, dict)
    return container


def selections_of(data: dict) -> tuple[str, ...]:
    """``override /data: cifar10`` entries of a preset's defaults list as ``data=cifar10`` overrides."""
    out = []
    for entry in data.get("defaults") or []:
        if isinstance(entry, dict):
            for key, value in entry.items():
                out.append(f"{str(key).removeprefix('override ').lstrip('/')}={value}")
    return tuple(out)


@pytest.mark.parametrize("path", PRESETS, ids=[f"{p.parent.name}/{p.stem}" for p in PRESETS])
def test_preset_states_only_what_differs_from_the_options_it_selects(path):
    raw = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    assert isinstance(raw, dict)
    values = {k: v for k, v in raw.items() if k not in ("defaults", "meta")}
    again = restated(values, composed(selections_of(raw)))
    assert not again, (
        f"conf/{path.parent.name}/{path.name} restates {again}: the options it selects already have these "
        f"values; fix: delete those lines"
    )


def test_the_check_catches_a_restated_default(tmp_path):
    """The check is not vacuous: a YAML that restates a default is caught, one that differs is not."""
    from binexp.quant.rbnn import RBNNConfig

    assert restated({"rounds": 3, "surrogate_params": {"t_max": 10}}, schema_defaults(RBNNConfig)) == [
        "rounds",
        "surrogate_params.t_max",
    ]
    assert restated({"rounds": 2, "rotation": 1, "surrogate_params": {"t_max": 5}}, schema_defaults(RBNNConfig)) == []
    bad = tmp_path / "quantizer" / "rbnn_copy.yaml"
    bad.parent.mkdir()
    bad.write_text("rounds: 2\n")
    with pytest.raises(AssertionError, match="must start from its schema"):
        schema_of(bad)
