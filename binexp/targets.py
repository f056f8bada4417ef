"""Which classes a config may instantiate through ``_target_``: Lightning's callbacks and
binexp's own classes. A run directory's saved overrides are replayed on ``resume=``, so they
are untrusted input; the same rule applies to callbacks from any config."""

from __future__ import annotations

import inspect
from typing import Any

from binexp.errors import BinexpError

ALLOWED_PREFIXES = ("lightning.pytorch.callbacks.", "binexp.")


def allowed_target(target: Any) -> bool:
    """``target`` names a class under one of :data:`ALLOWED_PREFIXES` (imported only after the
    name passed the prefix check, so nothing outside them is ever imported)."""
    if not isinstance(target, str) or not target.startswith(ALLOWED_PREFIXES) or ".." in target:
        return False
    from hydra._internal.utils import _locate

    try:
        obj = _locate(target)
    except Exception:  # noqa: BLE001 - a typo: instantiate reports it as one line (imports stay under the prefixes)
        return True
    module = getattr(obj, "__module__", None) or ""
    return inspect.isclass(obj) and any(module == p.rstrip(".") or module.startswith(p) for p in ALLOWED_PREFIXES)


def check_target(target: Any, where: str) -> None:
    if not allowed_target(target):
        raise BinexpError(
            f"{where}: _target_={target!r} is not allowed; fix: only classes of lightning.pytorch.callbacks "
            f"and binexp may be instantiated from a config"
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


def check_saved_overrides(overrides: list[str], where: str) -> None:
    """The overrides saved in a run directory (``.hydra/overrides.yaml``): any ``_target_`` in
    a key or inside a value must be allowed, and none may touch ``hydra.*`` (Hydra's own
    launcher, callbacks and search path are not part of a run's config)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except Exception as e:  # noqa: BLE001
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise BinexpError(
            f"{where} cannot be parsed ({first}); fix: restore the run directory's saved overrides"
        ) from None
    for ov in parsed:
        key = ov.get_key_element()
        if key.lstrip("+~").startswith("hydra") or key.startswith("hydra/"):
            raise BinexpError(
                f"{where}: {ov.input_line!r} changes Hydra itself, which a run's saved config never does; "
                f"fix: remove it from {where}"
            )
        value = ov.value()
        if key.split(".")[-1] == "_target_" or key.split("@")[0].split(".")[-1] == "_target_":
            check_target(value, f"{where}: {key}")
        check_targets(value, f"{where}: {key}")
