"""The registered names, read without importing torch, Lightning or Hydra: ``binexp list`` must
answer at once. Names and one-line summaries come from the package's own source (the
``register_quantizer``/``register_model`` decorators, the surrogate classes in
``quant/sign.py``, the ``DATASETS`` table) parsed with :mod:`ast`, and config options from the
YAML files; ``tests/unit/test_source_index.py`` checks that this agrees with the imported registries."""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent


def conf_dir() -> Path:
    """Where ``binexp.conf`` (the YAML configs) lives: ``conf/`` in a checkout, inside the
    package in a wheel (found without importlib.resources, which costs ~0.1 s to import)."""
    import importlib.util

    spec = importlib.util.find_spec("binexp.conf")
    locations = spec.submodule_search_locations if spec is not None else None
    if not locations:
        raise RuntimeError("binexp.conf (the YAML configs) is not installed; reinstall binexp")
    return Path(list(locations)[0])


def _const(node: ast.AST):
    return node.value if isinstance(node, ast.Constant) else None


def _decorator_calls(text: str, decorator: str) -> list[ast.Call]:
    """The ``@decorator(...)`` calls in ``text``, each parsed on its own (parsing whole modules
    is what made ``binexp list`` slow)."""
    calls = []
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if not line.startswith(f"@{decorator}("):
            continue
        for end in range(i + 1, min(i + 12, len(lines)) + 1):
            try:
                expr = ast.parse("\n".join(lines[i:end])[1:].strip(), mode="eval").body
            except SyntaxError:
                continue
            if isinstance(expr, ast.Call):
                calls.append(expr)
            break
    return calls


def _decorated(folder: str, decorator: str, summary_arg: int) -> dict[str, str]:
    """``{name: summary}`` of every ``@decorator("name", ...)`` in the modules of ``folder``."""
    out: dict[str, str] = {}
    for path in sorted((PACKAGE / folder).glob("*.py")):
        text = path.read_text(encoding="utf-8")
        if f"@{decorator}(" not in text:
            continue
        for node in _decorator_calls(text, decorator):
            name = _const(node.args[0]) if node.args else None
            summary = _const(node.args[summary_arg]) if len(node.args) > summary_arg else None
            if summary is None:
                summary = next((_const(k.value) for k in node.keywords if k.arg == "summary"), None)
            if isinstance(name, str):
                out[name] = summary or ""
    return out


def quantizers() -> dict[str, str]:
    return _decorated("quant", "register_quantizer", 2)


def models() -> dict[str, str]:
    return _decorated("models", "register_model", 1)


def activations() -> dict[str, str]:
    """``{name: ""}`` of the ``ACTIVATIONS`` dict literal in models/activations.py."""
    text = (PACKAGE / "models" / "activations.py").read_text(encoding="utf-8")
    start = text.index("ACTIVATIONS: dict[str, ActLayer] = {")
    names = re.findall(r'^    "(\w+)":', text[start : text.index("\n}\n", start)], re.M)
    return {n: "" for n in names}


def surrogates() -> dict[str, str]:
    """``{name: first docstring line}`` of the classes listed in ``SURROGATES`` (quant/sign.py)."""
    text = (PACKAGE / "quant" / "sign.py").read_text(encoding="utf-8")
    table = re.search(r"^SURROGATES\b.*?\{(.*?)\}", text, re.S | re.M)
    listed = re.findall(r"\b([A-Z]\w*)\b", table.group(1).split(" for ", 1)[-1]) if table else []
    out = {}
    for cls_name in listed:
        block = re.search(rf"^class {cls_name}\(.*?(?=^\S)", text + "\nEND", re.S | re.M)
        if block is None or cls_name == "Surrogate":
            continue
        doc = re.search(r'^    """(.*?)$', block.group(0), re.M)
        name = re.search(r'^    name\s*(?::\s*\w+\s*)?=\s*"(\w+)"', block.group(0), re.M)
        if name:
            out[name.group(1)] = doc.group(1).strip().removesuffix('"""').strip() if doc else ""
    return out


def dataset_kinds() -> list[str]:
    text = (PACKAGE / "data" / "registry.py").read_text(encoding="utf-8")
    table = re.search(r"^DATASETS\b.*?\{(.*?)^\}", text, re.S | re.M)
    return sorted(set(re.findall(r'^\s*"(\w+)"\s*:', table.group(1), re.M))) if table else []


def config_options(group: str) -> list[str]:
    root = conf_dir() / group
    if not root.is_dir():
        return []
    return sorted(p.name[: -len(".yaml")] for p in root.iterdir() if p.name.endswith(".yaml"))


def config_groups() -> list[str]:
    root = conf_dir()
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("_"))


def _scalar(text: str):
    text = text.strip()
    if text[:1] in ("'", '"'):
        quote = text[0]
        end = (
            text.index(quote, 1)
            if quote == "'"
            else next(i for i in range(1, len(text)) if text[i] == '"' and text[i - 1] != "\\")
        )
        inner = text[1:end]
        return inner.replace("''", "'") if quote == "'" else ast.literal_eval(f'"{inner}"')
    text = text.split(" #", 1)[0].strip()
    if text in ("null", "~", ""):
        return None
    if text in ("true", "false"):
        return text == "true"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def experiment_meta(name: str) -> dict:
    """The ``meta`` block of ``conf/experiment/<name>.yaml``: a flat map of scalars, read line by
    line (a YAML parser costs more import time than the whole of ``binexp list``; the test
    compares this with OmegaConf's reading of every preset)."""
    text = (conf_dir() / "experiment" / f"{name}.yaml").read_text(encoding="utf-8")
    meta: dict = {}
    inside = False
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if not line.startswith((" ", "\t")):
            inside = line.split("#", 1)[0].strip() == "meta:"
            continue
        if inside and ":" in line:
            key, _, value = line.strip().partition(":")
            meta[key.strip()] = _scalar(value)
    return meta


__all__ = ["config_groups", "config_options", "dataset_kinds", "experiment_meta", "models", "quantizers", "surrogates"]
