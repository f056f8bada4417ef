"""Which classes a config may instantiate through ``_target_``: an explicit list of callback
classes, named exactly - Lightning's callbacks that take only plain values, and binexp's own
diagnostics. Nothing else is imported or built from a config (no prefix rule: a test callback or
any other ``binexp.*`` class is refused). A run directory's saved overrides are replayed on
``resume=``, so they are untrusted input; the same rule applies to callbacks from any config."""

from __future__ import annotations

from typing import Any

from binexp.errors import BinexpError, did_you_mean

_LIGHTNING = "lightning.pytorch.callbacks."
# LambdaCallback (arbitrary callables), ModelPruning (a pruning function), the finders and the
# abstract bases are left out: none of them is configured with plain values alone
ALLOWED_TARGETS = frozenset(
    [
        *(
            _LIGHTNING + name
            for name in (
                "DeviceStatsMonitor",
                "EarlyStopping",
                "EMAWeightAveraging",
                "GradientAccumulationScheduler",
                "LearningRateMonitor",
                "ModelCheckpoint",
                "ModelSummary",
                "OnExceptionCheckpoint",
                "RichModelSummary",
                "RichProgressBar",
                "SpikeDetection",
                "StochasticWeightAveraging",
                "ThroughputMonitor",
                "Timer",
                "TQDMProgressBar",
            )
        ),
        "binexp.lit.callbacks.LayerDiagnostics",
        "binexp.lit.act_diagnostics.ActivationDiagnostics",
        "binexp.lit.divergence.DivergenceMonitor",
        "binexp.lit.epoch_line.EpochCheckpoint",
    ]
)


def allowed_target(target: Any) -> bool:
    """``target`` is one of :data:`ALLOWED_TARGETS`, spelled exactly (nothing is imported to decide)."""
    return isinstance(target, str) and target in ALLOWED_TARGETS


def check_target(target: Any, where: str) -> None:
    if not allowed_target(target):
        short = {t.rsplit(".", 1)[1]: t for t in ALLOWED_TARGETS}
        leaf = str(target).rsplit(".", 1)[-1]
        hint = f"; did you mean {short[leaf]}?" if leaf in short else did_you_mean(str(target), ALLOWED_TARGETS)
        raise BinexpError(
            f"{where}: _target_={target!r} is not allowed{hint}; fix: only these callback classes may be "
            f"instantiated from a config: {', '.join(sorted(t.rsplit('.', 1)[1] for t in ALLOWED_TARGETS))}"
        )


def check_targets(node: Any, where: str) -> None:
    """Every ``_target_`` anywhere inside a config node (dicts, lists, OmegaConf containers)."""
    from omegaconf import DictConfig, ListConfig, OmegaConf

    if isinstance(node, (DictConfig, ListConfig)):
        node = OmegaConf.to_container(node, resolve=False)
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "_target_":
                check_target(value, where)
            else:
                check_targets(value, f"{where}.{key}")
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            check_targets(value, f"{where}[{i}]")


# fields that say where a callback or logger writes: on resume= the run's own directory decides
_WHERE_TO_WRITE = {"dirpath", "filename", "save_dir", "log_dir", "tracking_uri", "default_root_dir"}


def _literal(value: Any) -> bool:
    """A plain value: a number, bool, null, or string without ``${`` (no interpolation, no
    resolver), or a list/dict of those without a ``_target_`` key."""
    if value is None or isinstance(value, (bool, int, float)):
        return True
    if isinstance(value, str):
        return "${" not in value
    if isinstance(value, (list, tuple)):
        return all(_literal(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and k != "_target_" and "${" not in k and _literal(v) for k, v in value.items())
    return False


def check_saved_overrides(overrides: list[str], where: str) -> None:
    """The overrides saved in a run directory (``.hydra/overrides.yaml``) are replayed only if
    each is what ``binexp train`` itself records: ``<key>=<literal value>`` where the key is a
    config group (and the value one of its registered options, never a path) or a field of the
    config (``+`` only for a Trainer argument), and the value is plain data. Nothing else passes:
    no interpolation or resolver (``${...}``), no ``hydra.*``, no ``_target_``, no added
    callbacks, no deletion, no sweep. The composed config is then validated like any other."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import OverrideType

    from binexp.source_index import config_groups, config_options

    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except Exception as e:  # noqa: BLE001
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise BinexpError(
            f"{where} cannot be parsed ({first}); fix: restore the run directory's saved overrides"
        ) from None
    groups = set(config_groups()) - {"hydra"}
    fields = _config_fields()
    for ov in parsed:
        line = str(ov.input_line)
        key = ov.get_key_element().lstrip("+~")

        def refuse(why: str, line: str = line) -> BinexpError:
            return BinexpError(
                f"{where}: {line!r} {why}, which a run's saved config never does; fix: remove it from {where}"
            )

        if key.split(".")[0].split("/")[0] == "hydra":
            raise refuse("changes Hydra itself")
        if key.split(".")[-1] == "_target_":
            check_target(ov.value(), f"{where}: {key}")
        check_targets(ov.value(), f"{where}: {key}")  # the message names a refused class
        if "_target_" in key.split(".") or not _literal(ov.value()):
            raise refuse("is not a plain value (an interpolation ${...} or a _target_)")
        if ov.is_sweep_override():
            raise refuse("is a sweep")
        if "/" in key or "@" in key or ov.package is not None:
            raise refuse("selects a config outside binexp's groups")
        if ov.type == OverrideType.DEL:
            raise refuse("deletes a key")
        top = key.split(".")[0]
        if key in groups:
            if ov.type != OverrideType.CHANGE or ov.value() not in config_options(key):
                raise refuse(f"is not a registered {key} option (binexp list {key})")
            continue
        if key.split(".")[-1] in _WHERE_TO_WRITE:
            raise refuse("points binexp's writes outside the run directory")
        if ov.type != OverrideType.CHANGE and not (top == "trainer" and key.count(".") == 1):
            raise refuse("adds a key")
        if top not in fields:
            raise refuse("sets no known config field")


def _config_fields() -> set[str]:
    """The top-level keys of the train config and its groups (``binexp train --cfg job``)."""
    import yaml

    from binexp.source_index import conf_dir, config_groups

    data = yaml.safe_load((conf_dir() / "train.yaml").read_text()) or {}
    return ({str(k) for k in data} | set(config_groups())) - {"hydra", "defaults"}
