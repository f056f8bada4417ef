"""The package's layering: commands > run > lit > models > quant; the run directory
(``binexp.runs``: checkpoints, lock, record, resume), config and data below lit; analysis reads runs
and never imports run or commands.

Every ``import`` statement counts, at module level or inside a function (the graph of
``tests/unit/test_imports.py``; ``if TYPE_CHECKING:`` imports are left out). A module may import
modules of its own layer and of the layers below; ``test_imports`` keeps each layer free of cycles.
A new top-level module or package has to be placed in ``LAYERS`` (the test says so)."""

from __future__ import annotations

import pytest

from tests.unit.test_imports import import_graph

# lowest first; an entry names a module or a package (all its modules)
LAYERS: list[tuple[str, set[str]]] = [
    (
        "base",
        {"binexp", "binexp.errors", "binexp.extras", "binexp.source_index", "binexp.console", "binexp.safeio"}
        | {"binexp.suggest", "binexp.tb_tags", "binexp.schema_source"},
    ),
    ("quant", {"binexp.quant", "binexp.optimizer"}),
    ("models and data", {"binexp.models", "binexp.data"}),
    ("below lit", {"binexp.config", "binexp.runs", "binexp.trackers", "binexp.analysis"}),
    ("lit", {"binexp.lit"}),
    ("run", {"binexp.run", "binexp.preflight"}),
    # sweep_end and launchers: Hydra plugins that read the jobs with status.py
    ("commands", {"binexp.commands", "binexp.sweep_end", "binexp.launchers"}),
    ("cli", {"binexp.cli", "binexp.__main__"}),
]
# Modules placed apart from their package: FleXOR's export format lives beside its quantizer but
# rebuilds a trained module from its checkpoint (binexp.lit.restore) for `binexp export`.
PLACED: dict[str, str] = {"binexp.quant.flexor_export": "lit"}
# Besides the order: analysis reads run directories and never imports the run or the verbs.
FORBIDDEN: list[tuple[str, set[str]]] = [("binexp.analysis", {"binexp.run", "binexp.preflight", "binexp.commands"})]


def _within(module: str, entry: str) -> bool:
    """``module`` is ``entry`` or inside it (the bare ``binexp`` entry is the package's __init__ only)."""
    return module == entry or (entry != "binexp" and module.startswith(entry + "."))


def layer_of(module: str) -> int:
    names = [name for name, _ in LAYERS]
    if module in PLACED:
        return names.index(PLACED[module])
    matches = [(len(entry), i) for i, (_, entries) in enumerate(LAYERS) for entry in entries if _within(module, entry)]
    assert matches, f"{module} is in no layer; fix: add it (or its package) to LAYERS in {__file__}"
    return max(matches)[1]


def violations(graph: dict[str, set[str]]) -> list[str]:
    out = []
    for module, imported in sorted(graph.items()):
        for target in sorted(imported):
            if layer_of(target) > layer_of(module):
                out.append(f"{module} ({LAYERS[layer_of(module)][0]}) imports {target} ({LAYERS[layer_of(target)][0]})")
            for source, banned in FORBIDDEN:
                if _within(module, source) and any(_within(target, b) for b in banned):
                    out.append(f"{module} imports {target}: {source} never imports {', '.join(sorted(banned))}")
    return out


def package_of(module: str) -> str:
    """``binexp.<package or top-level module>``; a module of ``PLACED`` stands on its own."""
    return module if module in PLACED else ".".join(module.split(".")[:2])


def test_every_import_goes_down_the_layers():
    found = violations(import_graph())
    assert not found, "layering broken:\n" + "\n".join(found)


def test_no_two_packages_import_each_other():
    edges = {
        (package_of(a), package_of(b))
        for a, targets in import_graph().items()
        for b in targets
        if package_of(a) != package_of(b)
    }
    mutual = sorted(f"{a} <-> {b}" for a, b in edges if (b, a) in edges and a < b)
    assert not mutual, f"packages importing each other: {mutual}"


def test_a_module_outside_every_layer_is_named():
    with pytest.raises(AssertionError, match="binexp.newthing is in no layer"):
        layer_of("binexp.newthing")


def test_the_check_catches_an_upward_and_a_forbidden_import():
    graph = {
        "binexp.quant.sign": {"binexp.lit.module"},
        "binexp.analysis.report": {"binexp.commands.report"},
        "binexp.lit.module": {"binexp.quant.sign"},
    }
    found = violations(graph)
    assert found[0] == "binexp.analysis.report (below lit) imports binexp.commands.report (commands)"
    assert "never imports" in found[1]
    assert found[2] == "binexp.quant.sign (quant) imports binexp.lit.module (lit)"
    assert len(found) == 3
