"""Config schemas and validation: every group is checked against its dataclass schema (unknown
keys, types, ranges, choices) before anything runs, and any problem becomes one line.

Each default is stated once, in the dataclass schemas: :func:`register_schemas` stores each
schema's defaults in Hydra's ConfigStore under ``_schema/<group>/<name>`` (quantizers by
registered name, datasets by kind, one ``model``, ``schedule`` and ``distill``), and every option
YAML starts from its schema (``defaults: [/_schema/quantizer/rbnn@_here_, _self_]``) and states only
what differs. Why ConfigStore and not YAML as the source: the dataclasses are also what the code
builds and type-checks against (``RBNNConfig()`` in tests and tools, mypy over every field), they
carry the per-field documentation and the ``__post_init__`` checks, and a new quantizer is one
file plus a YAML of its differences. The nodes are stored untyped (plain values), so composing stays
as permissive as before and every type, range and choice problem is still reported here, as one
line, by :func:`validate`. ``tests/config/test_defaults_once.py`` fails when a YAML restates a
default or an option YAML does not start from its schema."""

from __future__ import annotations

import copy
import dataclasses
import functools
import inspect
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException, ValidationError

from binexp.errors import BinexpError, did_you_mean

LONG_CHOICE_LIST = 20  # a group with more options names the closest and points to binexp list

if TYPE_CHECKING:  # imported where used: composing and checking a config imports no torch
    from binexp.models.registry import ModelConfig
    from binexp.optimizer import ScheduleConfig

MAX_SEED = 2**32 - 1  # numpy's (and Lightning's seed_everything's) range


@dataclass
class DistillConfig:
    """``distill.*``: knowledge distillation from a teacher run (KL on the logits)."""

    teacher: str | None = None  # run directory or .ckpt of the teacher; None = no distillation
    temperature: float = 1.0  # softmax temperature of teacher and student
    weight: float = 1.0  # share of the KL term in the loss; 1.0 = KL only (ReActNet), 0.5 = half CE
    attention_weight: float = 0.0  # attention transfer after every ResNet block (Real-to-Binary); 0 = off

    def __post_init__(self) -> None:
        if not (self.attention_weight >= 0 and math.isfinite(self.attention_weight)):
            raise ValueError(f"distill.attention_weight must be a number >= 0, got {self.attention_weight}")
        if self.attention_weight > 0 and not self.teacher:
            raise ValueError(
                "distill.attention_weight > 0 needs a teacher; fix: set distill.teacher=<run dir or .ckpt>"
            )
        if not self.temperature > 0:
            raise ValueError(f"distill.temperature must be > 0, got {self.temperature}")
        if not 0 <= self.weight <= 1:
            raise ValueError(f"distill.weight must be in [0, 1], got {self.weight}")


class QuantizerSettings(Protocol):
    """What every quantizer schema has (each method's own dataclass adds its fields)."""

    name: str


class DataSettings(Protocol):
    """What every dataset schema has (``binexp.data.registry``: one dataclass per kind)."""

    kind: str
    name: str
    batch_size: int


@dataclass
class RunConfig:
    """The validated pieces a run is built from."""

    data: DataSettings
    model: ModelConfig
    quantizer: QuantizerSettings
    schedule: ScheduleConfig
    trainer: dict[str, Any]
    distill: DistillConfig
    raw: DictConfig
    angle_penalty: float  # top-level `angle_penalty` (conf/train.yaml): lambda of binexp.lit.angle_penalty


SCHEMA_GROUP = "_schema"  # ConfigStore root of the schema defaults (hidden from `binexp list`)


def schemas() -> dict[str, dict[str, type]]:
    """``{group: {schema name: dataclass}}``: the schemas option YAMLs start from
    (``/_schema/<group>/<name>``), read from source without importing torch
    (:mod:`binexp.schema_source`: the same fields and defaults), else imported."""
    from binexp import schema_source

    try:
        return schema_source.schemas()
    except schema_source.Unavailable:
        return imported_schemas()


def imported_schemas() -> dict[str, dict[str, type]]:
    """:func:`schemas` from the imported registries (imports torch)."""
    from binexp.data.registry import DATASETS
    from binexp.models.registry import ModelConfig
    from binexp.optimizer import ScheduleConfig
    from binexp.quant.registry import QUANTIZERS

    return {
        "quantizer": {name: entry.schema for name, entry in QUANTIZERS.items()},
        "data": {kind: entry.schema for kind, entry in DATASETS.items()},
        "model": {"model": ModelConfig},
        "schedule": {"schedule": ScheduleConfig},
        "distill": {"distill": DistillConfig},
    }


def schema_defaults(schema: type) -> dict[str, Any]:
    """The dataclass's defaults as plain values (nested dataclasses as dicts)."""
    values = OmegaConf.to_container(OmegaConf.structured(schema))
    assert isinstance(values, dict)
    return {str(k): v for k, v in values.items()}


def register_schemas() -> None:
    """Store every schema's defaults in Hydra's ConfigStore (idempotent; call before composing)."""
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    for group, name, defaults in _schema_nodes():
        store.store(group=f"{SCHEMA_GROUP}/{group}", name=name, node=copy.deepcopy(defaults))


@functools.cache
def _schema_nodes() -> list[tuple[str, str, dict[str, Any]]]:
    """``(group, name, defaults)`` of every schema, once per process (a typo's hints compose again)."""
    return [(g, n, schema_defaults(schema)) for g, entries in schemas().items() for n, schema in entries.items()]


# ------------------------------------------------------------------------------------------
# compose(): the train config with Hydra's Compose API, every composition problem as one line

CONFIG_MODULE = "binexp.conf"


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _option_keys(group: str) -> dict[str, set[str]]:
    """{option: its top-level keys} of a config group: the keys its YAML file sets and the fields of
    the schema it starts from (``defaults: [/_schema/<group>/<name>@_here_]``)."""
    from importlib import resources

    import yaml

    from binexp.source_index import config_options

    known = schemas().get(group, {})
    out: dict[str, set[str]] = {}
    for option in config_options(group):
        try:
            data = yaml.safe_load((resources.files(CONFIG_MODULE) / group / f"{option}.yaml").read_text()) or {}
        except Exception:  # noqa: BLE001
            continue
        if not isinstance(data, dict):
            out[option] = set()
            continue
        keys = {str(k) for k in data if k != "defaults"}
        for entry in data.get("defaults") or []:
            path = str(entry).split("@", 1)[0].strip("/")
            if path.startswith(f"{SCHEMA_GROUP}/{group}/") and path.rsplit("/", 1)[1] in known:
                keys |= {f.name for f in dataclasses.fields(known[path.rsplit("/", 1)[1]])}
        out[option] = keys
    return out


def _node_keys(overrides: list[str], key: str) -> list[str]:
    """The keys next to ``key`` in the config composed without the override that set it."""
    parent, _, _ = key.rpartition(".")
    rest = [o for o in overrides if o.split("=", 1)[0].lstrip("+~") != key]
    try:
        cfg = compose(rest)
    except BinexpError:
        return []
    node = OmegaConf.select(cfg, parent) if parent else cfg
    return [str(k) for k in node] if node is not None and hasattr(node, "keys") else []


def _paths_ending_in(leaf: str, overrides: list[str]) -> list[str]:
    """Full keys of the composed config whose last part is ``leaf`` (or, failing that, close to
    it), shortest first: where a bare key such as ``lr`` lives (``schedule.lr``)."""
    import difflib

    try:
        cfg = OmegaConf.to_container(compose(overrides), resolve=False)
    except BinexpError:
        return []
    found: list[str] = []

    def walk(node, prefix: str) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                if str(k) != "hydra":
                    found.append(f"{prefix}{k}")
                    walk(v, f"{prefix}{k}.")

    walk(cfg, "")
    nested = [p for p in found if "." in p]
    exact = [p for p in nested if p.rsplit(".", 1)[1] == leaf]
    if not exact:
        tails = {p.rsplit(".", 1)[1] for p in nested}
        close = set(difflib.get_close_matches(leaf, sorted(tails), n=2, cutoff=0.8))
        exact = [p for p in nested if p.rsplit(".", 1)[1] in close]
    return sorted(exact, key=lambda p: (p.count("."), p))


def _unknown_key_error(key: str, overrides: list[str]) -> BinexpError:
    parent, _, leaf = key.rpartition(".")
    group = key.split(".", 1)[0]
    if "." in key and "." not in parent:  # a key of a group option: does another option have it?
        # the option in force is the last one given (data=cifar10 data=synthetic selects synthetic)
        choice = next(
            (o.split("=", 1)[1] for o in reversed(overrides) if o.split("=", 1)[0].lstrip("+~") == group), None
        )
        owners = sorted(opt for opt, keys in _option_keys(group).items() if leaf in keys and opt != choice)
        if owners and choice is not None:
            return BinexpError(
                f"unknown key {key} for {group}={choice}: {leaf} is a key of {group}="
                f"{', '.join(owners)} only; fix: set {key} only in runs with {group}="
                f"{' or '.join(owners)} (a separate sweep), or drop it"
            )
    hint = did_you_mean(leaf, _node_keys(overrides, key), f"{parent}." if parent else "")
    if not parent:  # a misspelt group name: suggest the whole override (quantizr=xnor -> quantizer=xnor)
        import difflib

        from binexp.source_index import config_groups

        value = next((o.split("=", 1)[1] for o in overrides if o.split("=", 1)[0].lstrip("+~") == key), None)
        close = difflib.get_close_matches(leaf, config_groups(), n=1, cutoff=0.6)
        if close and value is not None:
            hint = f"; did you mean {close[0]}={value}?"
        elif value is not None:  # a bare key of a group: max_epochs=3 -> trainer.max_epochs=3
            paths = _paths_ending_in(leaf, [o for o in overrides if o.split("=", 1)[0].lstrip("+~") != key])
            if paths:
                hint = "; did you mean " + " or ".join(f"{p}={value}" for p in paths[:2]) + "?"
    if not hint and group == "trainer":
        import inspect

        from lightning.pytorch import Trainer

        hint = did_you_mean(leaf, inspect.signature(Trainer.__init__).parameters, "+trainer.")
    if hint:
        return BinexpError(f"unknown key {key}{hint} (binexp train --cfg job shows every key)")
    return BinexpError(
        f"unknown key {key}; fix: check the spelling (binexp train --cfg job shows every key) "
        f"or add a new key with +{key}=..."
    )


def not_an_override(overrides: list[str]) -> str | None:
    """What is wrong with an argument that is no Hydra override at all (no ``=``): a path, where
    ``binexp summary outputs/runs/x`` meant ``--run``, or a bare word. None when every one has ``=``."""
    for o in overrides:
        if "=" in o or o.startswith(("~", "-")):
            continue
        if "/" in o or Path(o).exists():
            return (
                f"{o!r} is a path, not a key=value override; fix: a run directory goes to resume=<dir> "
                f"(train), --run <dir> (summary) or is the first argument (report, plot, status)"
            )
        return f"{o!r} is not a key=value override; fix: write key=value (binexp train --cfg job shows every key)"
    return None


def _compose_error(e: Exception, overrides: list[str] | None = None) -> BinexpError:
    from hydra.errors import ConfigCompositionException, MissingConfigException, OverrideParseException

    overrides = overrides or []
    if isinstance(e, MissingConfigException):
        missing = getattr(e, "missing_cfg_file", None) or ""
        options = getattr(e, "options", None)
        if "/" in missing and options is not None:
            group, name = missing.rsplit("/", 1)
            hint = did_you_mean(name, options, f"{group}=")
            if len(options) > LONG_CHOICE_LIST:  # 110 experiments would make a 2,700-character line
                listed = f"{len(options)} options: binexp list {group}"
                return BinexpError(
                    f"unknown {group} option {name!r}{hint} ({listed})"
                    if hint
                    else f"unknown {group} option {name!r}; fix: pick one of the {listed}"
                )
            return BinexpError(f"unknown {group} option {name!r}; choose one of: {', '.join(sorted(options))}{hint}")
        return BinexpError(_first_line(e))
    if isinstance(e, OverrideParseException):
        return BinexpError(not_an_override(overrides) or f"cannot parse override: {_first_line(e)}")
    if isinstance(e, ConfigCompositionException):
        msg = _first_line(e)
        cause = e.__cause__
        if cause is not None and "not in struct" in str(cause):
            key = getattr(cause, "full_key", None) or msg
            return _unknown_key_error(str(key), overrides)
        if msg.startswith("Could not override '") and "No match in the defaults list" in msg:
            from binexp.source_index import config_groups

            group = msg.split("'")[1]
            return BinexpError(
                f"unknown config group {group!r}; choose one of: {', '.join(config_groups())}"
                f"{did_you_mean(group, config_groups())}"
            )
        if cause is not None:
            return BinexpError(f"{msg} {_first_line(cause)}")
        return BinexpError(msg)
    return BinexpError(_first_line(e))


def tasks_per_node(gpus_per_node, devices) -> int:
    """``hydra.launcher.tasks_per_node`` of the SLURM launcher: Lightning's DDP on SLURM runs one
    task per device, i.e. one per GPU, or on a CPU job (``gpus_per_node=0``) ``trainer.devices``
    tasks (1 unless it is a number)."""
    if int(gpus_per_node or 0) > 0:
        return int(gpus_per_node)
    return int(devices) if isinstance(devices, int) or str(devices).isdigit() else 1


if not OmegaConf.has_resolver("binexp_tasks_per_node"):
    OmegaConf.register_new_resolver("binexp_tasks_per_node", tasks_per_node)


def compose(overrides: list[str]):
    """Compose the train config with the Compose API (no output directories, no logging)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    register_schemas()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_module(CONFIG_MODULE, version_base="1.3"):
            return hydra_compose("train", overrides=overrides, return_hydra_config=True)
    except BinexpError:
        raise
    except Exception as e:  # noqa: BLE001 - every composition problem becomes one line
        raise _compose_error(e, overrides) from None
    finally:
        GlobalHydra.instance().clear()


def _schema_error(group: str, err: Exception, schema: type) -> BinexpError:
    if isinstance(err, ConfigKeyError):
        key = getattr(err, "full_key", None) or getattr(err, "key", None) or str(err).splitlines()[0]
        valid = ", ".join(f.name for f in dataclasses.fields(schema))
        hint = did_you_mean(str(key).rpartition(".")[2], [f.name for f in dataclasses.fields(schema)], f"{group}.")
        return BinexpError(f"unknown key {group}.{key}{hint}; valid keys of {group}: {valid}")
    if isinstance(err, ValidationError):
        full_key = getattr(err, "full_key", "") or ""
        msg = str(err).splitlines()[0]
        return BinexpError(f"bad value for {group}.{full_key}: {msg}; fix: give a value of the right type")
    return BinexpError(f"{err}")


def check_finite(value: Any, where: str) -> None:
    """No ``inf`` or ``nan`` anywhere in a config value: no binexp setting means either."""
    if isinstance(value, float) and not math.isfinite(value):
        raise BinexpError(f"bad value for {where}: {value} is not a finite number; fix: give a finite number")
    if isinstance(value, dict):
        for key, item in value.items():
            check_finite(item, f"{where}.{key}")
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            check_finite(item, f"{where}[{i}]")


def to_schema(schema: type, node: DictConfig | dict, group: str) -> Any:
    """Merge ``node`` into ``schema`` and build the dataclass (runs its ``__post_init__`` checks)."""
    try:
        # resolve ${...} against the whole config first (e.g. seed: ${seed})
        values = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node
    except (OmegaConfBaseException, ValueError, TypeError) as e:
        raise _schema_error(group, e, schema) from None
    check_finite(values, group)
    try:
        merged = OmegaConf.merge(OmegaConf.structured(schema), values)
        return OmegaConf.to_object(merged)
    except (OmegaConfBaseException, ValueError, TypeError) as e:
        raise _schema_error(group, e, schema) from None


def _check_trainer_names(keys: list[str], arguments) -> None:
    """Every ``trainer.<key>`` a ``lightning.pytorch.Trainer`` argument binexp lets a config set
    (``arguments``: the names of ``Trainer.__init__``; callbacks, logger and the root folder are binexp's)."""
    binexps = {"callbacks": "callbacks.<name>=", "logger": "logger=<name>", "default_root_dir": "hydra.run.dir="}
    allowed = set(arguments) - {"self", *binexps}
    for key in keys:
        if key in binexps:
            raise BinexpError(f"trainer.{key} is binexp's to set; fix: use {binexps[key]} (binexp train --cfg job)")
        if key not in allowed:
            raise BinexpError(
                f"unknown trainer option trainer.{key}{did_you_mean(key, allowed, 'trainer.')}; "
                "fix: use a lightning.pytorch.Trainer argument (e.g. trainer.max_epochs, trainer.accelerator)"
            )


def trainer_kwargs(node: DictConfig) -> dict:
    from lightning.pytorch import Trainer

    container = OmegaConf.to_container(node, resolve=True)
    if not isinstance(container, dict):
        raise BinexpError(
            f"trainer must be a mapping of Trainer arguments, got {container!r}; fix: use trainer.<arg>=<value>"
        )
    kwargs: dict[str, Any] = {str(k): v for k, v in container.items()}
    _check_trainer_names(list(kwargs), inspect.signature(Trainer.__init__).parameters)
    check_finite(kwargs, "trainer")
    hints = _trainer_hints()
    for key, value in kwargs.items():
        _check_trainer_type(key, value, hints.get(key))
    if kwargs.get("max_epochs") is not None and kwargs["max_epochs"] < 1:
        raise BinexpError(f"trainer.max_epochs must be >= 1, got {kwargs['max_epochs']}")
    for key, low in _TRAINER_MINIMUM.items():
        value = kwargs.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value < low:
            raise BinexpError(f"trainer.{key} must be >= {low}, got {value}; fix: trainer.{key}=<a number >= {low}>")
    limit = kwargs.get("limit_train_batches")
    if limit is not None and not isinstance(limit, bool) and limit == 0:
        raise BinexpError(
            "trainer.limit_train_batches=0 trains nothing; "
            "fix: a fraction in (0, 1], a number of batches >= 1, or null for all"
        )
    return kwargs


# Trainer arguments whose value has a floor Lightning itself does not check before training
# (check_val_every_n_epoch=0 divides by zero; gradient_clip_val=-1 clips nothing, silently)
_TRAINER_MINIMUM = {
    "check_val_every_n_epoch": 1,
    "accumulate_grad_batches": 1,
    "num_nodes": 1,
    "log_every_n_steps": 0,
    "min_epochs": 0,
    "gradient_clip_val": 0,
    "reload_dataloaders_every_n_epochs": 0,
}


def _trainer_hints() -> dict:
    import typing

    from lightning.pytorch import Trainer

    try:
        return typing.get_type_hints(Trainer.__init__)
    except Exception:  # noqa: BLE001 - an annotation this Python cannot evaluate: Lightning checks alone
        return {}


def _check_trainer_type(key: str, value: Any, hint: Any) -> None:
    """An int or bool argument of ``Trainer`` gets an int or bool (``max_epochs=1.5`` is not an
    epoch count; Lightning would fail on it mid-run or read it as something else)."""
    import typing

    if hint is None or value is None:
        return
    options = set(typing.get_args(hint)) if typing.get_origin(hint) is typing.Union else {hint}
    options.discard(type(None))
    if options == {int} and (isinstance(value, bool) or not isinstance(value, int)):
        raise BinexpError(f"bad value for trainer.{key}: {value!r} is not a whole number; fix: trainer.{key}=<integer>")
    if options == {bool} and not isinstance(value, bool):
        raise BinexpError(f"bad value for trainer.{key}: {value!r} is not true or false; fix: trainer.{key}=true|false")


def check_trainer(kwargs: dict) -> None:
    """Let Lightning check devices, accelerator, precision and strategy by building a Trainer
    that writes nothing (no logger, no checkpoints); its complaint becomes one line."""
    import contextlib
    import io
    import logging

    from lightning.pytorch import Trainer

    quiet = [logging.getLogger(n) for n in ("lightning", "lightning.pytorch", "lightning.fabric")]
    levels = [q.level for q in quiet]
    try:
        for q in quiet:
            q.setLevel(logging.ERROR)
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            Trainer(
                **{
                    **kwargs,
                    "logger": False,
                    "enable_checkpointing": False,
                    "enable_progress_bar": False,
                    "enable_model_summary": False,
                }
            )
    except Exception as e:  # noqa: BLE001 - Lightning's MisconfigurationException, ValueError, TypeError
        text = str(e).strip()
        first = text.splitlines()[0] if text else type(e).__name__
        acc = str(kwargs.get("accelerator", "auto"))
        if acc not in ("auto", "cpu") and ("backend" in first or "not available" in first):
            raise BinexpError(
                f"trainer.accelerator={acc}: no {acc} available on this machine ({first}); "
                f"fix: trainer.accelerator=cpu or trainer.accelerator=auto"
            ) from None
        keys = [k for k in ("devices", "precision", "strategy", "num_nodes", "accelerator") if k in first]
        hint = f"trainer.{keys[0]}" if keys else "the trainer.* options"
        raise BinexpError(
            f"trainer options rejected by Lightning: {first}; fix: check {hint} (e.g. trainer.accelerator=cpu "
            f"trainer.devices=1 trainer.precision=32-true)"
        ) from None
    finally:
        for q, level in zip(quiet, levels):
            q.setLevel(level)


def check_angle_penalty(value, quantizer_cfg, probe: bool = True) -> float:
    """Validate the top-level ``angle_penalty``: a number >= 0, and > 0 only for a quantizer whose
    layers keep a latent weight (checked on one probe layer built from a copy of the config, unless
    ``probe`` is false)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise BinexpError(f"angle_penalty must be a number >= 0, got {value!r}; fix: e.g. angle_penalty=0.1 (0 = off)")
    if value == 0 or not probe:
        return float(value)
    from binexp.quant.registry import ConvFactory

    layer = ConvFactory(copy.deepcopy(quantizer_cfg))(16, 16, 3, 1, 1)
    hook = getattr(layer, "penalty_weight", None)
    if not callable(hook) or hook() is None:
        raise BinexpError(
            f"angle_penalty={value} needs binarized layers with real latent weights (xnor, bireal, rbnn); "
            f"quantizer={quantizer_cfg.name} has none; fix: set angle_penalty=0 or choose such a quantizer"
        )
    return float(value)


def check_light(overrides: list[str]) -> None:
    """The config check that imports no torch or Lightning, so that a typo is answered at once:
    compose (unknown keys, options and groups, bare keys) and check every group against its schema
    read from source (types, ranges, choice values), each problem as the same line as
    :func:`validate` gives. Not checked here: the ``trainer`` arguments against Lightning, the
    angle penalty's layers, the data, the model (``preflight.check_config`` does all of it next).
    Returns quietly when it finds nothing, or when a schema needs torch after all."""
    from binexp import schema_source

    cfg = compose(overrides)
    try:
        validate(cfg, light=schema_source.schemas())
        trainer = cfg.get("trainer")
        if isinstance(trainer, DictConfig):  # only the names (types and values: the full check)
            _check_trainer_names([str(k) for k in trainer], schema_source.trainer_arguments())
    except (schema_source.Unavailable, NameError):
        return  # a check this reader cannot run: the full check runs it


def validate(cfg: DictConfig, light: dict[str, dict[str, type]] | None = None) -> RunConfig:
    """Check the composed config; raise :class:`BinexpError` with one line on the first problem.
    ``light``: the schemas of :mod:`binexp.schema_source` (no torch imported; the ``trainer``
    arguments and the angle penalty's layers are then not checked, and the return value is only
    for the check)."""
    try:
        qname = cfg.quantizer.name
        dkind = cfg.data.kind
    except OmegaConfBaseException as e:
        raise BinexpError(
            f"config is missing quantizer.name or data.kind ({e}); fix: select quantizer=<name> and data=<name>"
        ) from None
    if light is not None:
        quantizers, datasets = light["quantizer"], light["data"]
        model_schema, schedule_schema = light["model"]["model"], light["schedule"]["schedule"]
        distill_schema = light["distill"]["distill"]
    else:
        from binexp.data.registry import DATASETS
        from binexp.models.registry import ModelConfig
        from binexp.optimizer import ScheduleConfig
        from binexp.quant.registry import QUANTIZERS

        quantizers = {n: e.schema for n, e in QUANTIZERS.items()}
        datasets = {k: e.schema for k, e in DATASETS.items()}
        model_schema, schedule_schema, distill_schema = ModelConfig, ScheduleConfig, DistillConfig
    if qname not in quantizers:
        raise BinexpError(
            f"quantizer.name={qname!r} is not a registered quantizer; choose one of: {', '.join(sorted(quantizers))}"
        ) from None
    if dkind not in datasets:
        raise BinexpError(f"data.kind={dkind!r} is not a dataset kind; choose one of: {', '.join(sorted(datasets))}")
    quantizer = to_schema(quantizers[qname], cfg.quantizer, "quantizer")
    data = to_schema(datasets[dkind], cfg.data, "data")
    model = to_schema(model_schema, cfg.model, "model")
    schedule = to_schema(schedule_schema, cfg.schedule, "schedule")
    trainer = trainer_kwargs(cfg.trainer) if light is None else {}
    distill = to_schema(distill_schema, cfg.get("distill") or {}, "distill")
    for flag in ("verbose", "compile", "channels_last"):
        if cfg.get(flag) not in (None, True, False):
            raise BinexpError(f"{flag} must be true or false, got {cfg.get(flag)!r}; fix: {flag}=true or {flag}=false")
    seed = cfg.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED):
        raise BinexpError(f"seed must be a non-negative integer (at most {MAX_SEED}) or null, got {seed!r}")
    name = str(cfg.get("name"))
    if not name.strip() or "/" in name or "\\" in name or "\x00" in name or name in (".", ".."):
        raise BinexpError(
            f"name={name!r} names the run directory (outputs/runs/<time>_<name>) and must be one folder name; "
            f"fix: name=<a word without '/', e.g. rbnn_short>"
        )
    penalty = check_angle_penalty(cfg.get("angle_penalty", 0.0), quantizer, probe=light is None)
    return RunConfig(
        data=data,
        model=model,
        quantizer=quantizer,
        schedule=schedule,
        trainer=trainer,
        distill=distill,
        raw=cfg,
        angle_penalty=penalty,
    )
