"""The config schemas built from the package's source, without importing torch or Lightning, so
that a typo in a key, an option or a choice value is answered at once (``binexp train`` checks the
config with these before it imports torch; see :func:`binexp.config.check_light`).

Each schema stays where it is written (the method's own module, ``data/registry.py``,
``models/registry.py``, ``optimizer.py``, ``config.py``): this module reads that module's source
with :mod:`ast` and executes only its torch-free parts (its ``from __future__`` line, the names
it imports from other binexp modules, read the same way, its literal constants, its functions
and its dataclasses) in a namespace of its own. The registered names a schema checks against
(surrogates, models, activations) come from :mod:`binexp.source_index`. The classes are the same
definitions, with the same defaults and ``__post_init__`` checks, as the imported ones;
``tests/config/test_schema_source.py`` checks that they agree for every schema. Anything this
cannot provide (a module-level value that needs torch) raises :class:`Unavailable`, and the caller
falls back to importing the real modules."""

from __future__ import annotations

import ast
import builtins
import dataclasses
import functools
import math
import sys
import types
import typing
from pathlib import Path

from binexp import source_index

PACKAGE = source_index.PACKAGE
_STDLIB = {"math": math, "dataclasses": dataclasses, "typing": typing}


def _readers(module: str) -> dict[str, object]:
    """The registries a schema checks against, whose entries are defined in torch code: from the source_index."""
    if module == "binexp.quant.sign":
        return {"surrogate_names": lambda: sorted(source_index.surrogates())}
    if module == "binexp.models.registry":
        return {"model_names": lambda: sorted(source_index.models()), "MODELS": source_index.models()}
    if module == "binexp.models.activations":
        return {"activation_names": lambda: sorted(source_index.activations())}
    return {}


class Unavailable(Exception):
    """A schema this reader cannot build without importing torch (import the real module)."""


class _Missing:
    """A name the source imports from torch or a module this reader skips: an error only if used."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __getattr__(self, attr: str):
        raise Unavailable(f"{self.name}.{attr} needs the real module")

    def __call__(self, *args, **kwargs):
        raise Unavailable(f"{self.name} needs the real module")


def _path(module: str) -> Path:
    parts = module.split(".")[1:]
    path = PACKAGE.joinpath(*parts).with_suffix(".py")
    if not path.is_file():
        path = PACKAGE.joinpath(*parts, "__init__.py")
    if not path.is_file():
        raise Unavailable(f"no source for {module}")
    return path


def _literal(node: ast.AST | None) -> tuple[bool, object]:
    if node is None:
        return False, None
    try:
        return True, ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False, None


@functools.cache
def namespace(module: str) -> dict[str, object]:
    """The torch-free definitions of a binexp module, by name."""
    tree = ast.parse(_path(module).read_text(encoding="utf-8"))
    mod = types.ModuleType(f"binexp.schema_source.{module}")  # dataclasses look the module up
    sys.modules[mod.__name__] = mod
    ns: dict[str, object] = mod.__dict__
    ns["__builtins__"] = builtins
    keep: list[ast.stmt] = []
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module == "__future__":
            keep.append(node)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                name = alias.asname or alias.name
                ns[name] = _imported(node.module, alias.name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                name = alias.asname or alias.name.split(".")[0]
                ns[name] = _STDLIB.get(alias.name, _Missing(alias.name))
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            ok, value = _literal(node.value)
            ok = ok and not (isinstance(value, (dict, list, set)) and not value)  # an empty registry, filled later
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if ok:
                for target in targets:
                    if isinstance(target, ast.Name):
                        ns[target.id] = value
        elif (
            isinstance(node, ast.FunctionDef)
            and not node.decorator_list
            or isinstance(node, ast.ClassDef)
            and _is_dataclass(node)
        ):
            keep.append(node)
    ns.update(_readers(module))
    future = [n for n in keep if isinstance(n, ast.ImportFrom)]
    for node in keep:  # one at a time: a function whose defaults need torch is left out, not the module
        if node in future:
            continue
        code = compile(ast.Module(body=[*future, node], type_ignores=[]), str(_path(module)), "exec", dont_inherit=True)
        try:
            exec(code, ns)  # noqa: S102 - binexp's own source, its torch-free part
        except Exception:  # noqa: BLE001, S112 - needs a skipped name: absent here (a schema that needs it: Unavailable)
            continue
    ns.update(_readers(module))  # the source index's answer, not a function that reads a torch registry
    return ns


def _is_dataclass(node: ast.ClassDef) -> bool:
    for d in node.decorator_list:
        target = d.func if isinstance(d, ast.Call) else d
        if isinstance(target, ast.Name) and target.id == "dataclass":
            return True
    return False


def _imported(module: str, name: str) -> object:
    if module in _STDLIB:
        return getattr(_STDLIB[module], name)
    if module == "collections.abc" or module == "typing":
        return getattr(__import__(module, fromlist=[name]), name)
    if module.startswith("binexp.") and module != "binexp.schema_source":
        try:
            ns = namespace(module)
        except Unavailable:
            return _Missing(f"{module}.{name}")
        if name in ns:
            return ns[name]
    if module == "binexp.suggest" or module == "binexp.errors":
        return getattr(__import__(module, fromlist=[name]), name)  # torch-free
    return _Missing(f"{module}.{name}")


def _schema(module: str, name: str) -> type:
    value = namespace(module).get(name)
    if not isinstance(value, type) or not dataclasses.is_dataclass(value):
        raise Unavailable(f"{module}.{name} is not a dataclass this reader can build")
    return value


def quantizer_schemas() -> dict[str, type]:
    """``{quantizer name: schema}`` from the ``@register_quantizer("name", Schema, ...)`` decorators."""
    out: dict[str, type] = {}
    for path in sorted((PACKAGE / "quant").glob("*.py")):
        text = path.read_text(encoding="utf-8")
        if "@register_quantizer(" not in text:
            continue
        for call in source_index._decorator_calls(text, "register_quantizer"):
            if len(call.args) >= 2 and isinstance(call.args[0], ast.Constant) and isinstance(call.args[1], ast.Name):
                out[str(call.args[0].value)] = _schema(f"binexp.quant.{path.stem}", call.args[1].id)
    return out


def dataset_schemas() -> dict[str, type]:
    """``{dataset kind: schema}`` from the ``DATASETS`` table of ``data/registry.py``."""
    module = "binexp.data.registry"
    tree = ast.parse(_path(module).read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.target.id == "DATASETS":
            table = node.value
            if isinstance(table, ast.Dict):
                out = {}
                for key, entry in zip(table.keys, table.values):
                    if not (isinstance(key, ast.Constant) and isinstance(entry, ast.Call) and len(entry.args) >= 2):
                        raise Unavailable("DATASETS is not a table of DatasetEntry(kind, Schema, build)")
                    schema = entry.args[1]
                    if not isinstance(schema, ast.Name):
                        raise Unavailable("a DATASETS schema is not a name")
                    out[str(key.value)] = _schema(module, schema.id)
                return out
    raise Unavailable("no DATASETS table in data/registry.py")


@functools.cache
def trainer_arguments() -> frozenset[str]:
    """The keyword arguments of ``lightning.pytorch.Trainer.__init__``, read from Lightning's
    installed source (``lightning/pytorch/trainer/trainer.py``) without importing it."""
    import importlib.util

    spec = importlib.util.find_spec("lightning")  # a top-level name: found, not imported
    if spec is None or not spec.submodule_search_locations:
        raise Unavailable("lightning is not installed")
    source = Path(next(iter(spec.submodule_search_locations))) / "pytorch" / "trainer" / "trainer.py"
    try:
        tree = ast.parse(source.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, ValueError) as e:
        raise Unavailable(f"cannot read {source}: {e}") from None
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == "Trainer":
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and item.name == "__init__":
                    a = item.args
                    return frozenset(x.arg for x in [*a.posonlyargs, *a.args, *a.kwonlyargs] if x.arg != "self")
    raise Unavailable(f"no Trainer.__init__ in {source}")


@functools.cache
def schemas() -> dict[str, dict[str, type]]:
    """What :func:`binexp.config.schemas` returns, read from source: ``{group: {name: dataclass}}``."""
    return {
        "quantizer": quantizer_schemas(),
        "data": dataset_schemas(),
        "model": {"model": _schema("binexp.models.registry", "ModelConfig")},
        "schedule": {"schedule": _schema("binexp.optimizer", "ScheduleConfig")},
        "distill": {"distill": _schema("binexp.config", "DistillConfig")},
    }


__all__ = ["Unavailable", "dataset_schemas", "namespace", "quantizer_schemas", "schemas", "trainer_arguments"]
