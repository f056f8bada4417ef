"""The registered names, read without importing torch, Lightning or Hydra: ``binexp list`` must
answer at once. Names and one-line summaries come from the package's own source (the
``register_quantizer``/``register_model`` decorators, the surrogate classes in
``quant/sign.py``, the ``DATASETS`` table) parsed with :mod:`ast`, and config options from the
YAML files; ``tests/unit/test_catalog.py`` checks that this agrees with the imported registries."""

from __future__ import annotations

import ast
from importlib import resources
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent


def _tree(relative: str) -> ast.Module:
    return ast.parse((PACKAGE / relative).read_text(encoding="utf-8"))


def _const(node: ast.AST):
    return node.value if isinstance(node, ast.Constant) else None


def _decorated(files: list[str], decorator: str, summary_arg: int) -> dict[str, str]:
    """``{name: summary}`` of every ``@decorator("name", ...)`` in ``files``."""
    out: dict[str, str] = {}
    for relative in files:
        for node in ast.walk(_tree(relative)):
            if not isinstance(node, ast.Call) or getattr(node.func, "id", None) != decorator or not node.args:
                continue
            name = _const(node.args[0])
            summary = _const(node.args[summary_arg]) if len(node.args) > summary_arg else None
            if summary is None:
                summary = next((_const(k.value) for k in node.keywords if k.arg == "summary"), None)
            if isinstance(name, str):
                out[name] = summary or ""
    return out


def quantizers() -> dict[str, str]:
    files = sorted(f"quant/{p.name}" for p in (PACKAGE / "quant").glob("*.py"))
    return _decorated(files, "register_quantizer", 2)


def models() -> dict[str, str]:
    files = sorted(f"models/{p.name}" for p in (PACKAGE / "models").glob("*.py"))
    return _decorated(files, "register_model", 1)


def surrogates() -> dict[str, str]:
    """``{name: first docstring line}`` of the classes listed in ``SURROGATES``."""
    tree = _tree("quant/sign.py")
    classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
    listed: list[str] = []
    for node in ast.walk(tree):
        target = node.target if isinstance(node, ast.AnnAssign) else (node.targets[0] if isinstance(node, ast.Assign) else None)
        if getattr(target, "id", None) == "SURROGATES":
            listed = [e.id for e in ast.walk(node.value) if isinstance(e, ast.Name) and e.id in classes]
    out = {}
    for cls_name in listed:
        cls = classes[cls_name]
        name = next((_const(s.value) for s in cls.body if isinstance(s, (ast.Assign, ast.AnnAssign))
                     and getattr(s.targets[0] if isinstance(s, ast.Assign) else s.target, "id", None) == "name"), None)
        if isinstance(name, str):
            out[name] = ((ast.get_docstring(cls) or "").strip().splitlines() or [""])[0]
    return out


def dataset_kinds() -> list[str]:
    for node in ast.walk(_tree("data/registry.py")):
        target = node.target if isinstance(node, ast.AnnAssign) else (node.targets[0] if isinstance(node, ast.Assign) else None)
        if getattr(target, "id", None) == "DATASETS" and isinstance(node.value, ast.Dict):
            return sorted(k.value for k in node.value.keys if isinstance(k, ast.Constant))
    return []


def config_options(group: str) -> list[str]:
    root = resources.files("binexp.conf") / group
    if not root.is_dir():
        return []
    return sorted(p.name[: -len(".yaml")] for p in root.iterdir() if p.name.endswith(".yaml"))


def config_groups() -> list[str]:
    root = resources.files("binexp.conf")
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("_"))


def experiment_meta(name: str) -> dict:
    """The ``meta`` block of ``conf/experiment/<name>.yaml`` (plain YAML, no composition)."""
    import yaml

    text = (resources.files("binexp.conf") / "experiment" / f"{name}.yaml").read_text(encoding="utf-8")
    data = yaml.safe_load(text) or {}
    return data.get("meta") or {}


__all__ = ["config_groups", "config_options", "dataset_kinds", "experiment_meta", "models", "quantizers", "surrogates"]
