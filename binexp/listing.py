"""``binexp list``: the registered names and the config options that exist."""

from __future__ import annotations

from importlib import resources


def config_options(group: str) -> list[str]:
    root = resources.files("binexp.conf") / group
    if not root.is_dir():
        return []
    return sorted(p.name[: -len(".yaml")] for p in root.iterdir() if p.name.endswith(".yaml"))


def print_listing(group: str | None = None) -> None:
    from binexp.data import dataset_kinds
    from binexp.models import MODELS, activation_names
    from binexp.quant import QUANTIZERS
    from binexp.quant.sign import SURROGATES

    sections = {
        "quantizer": [(n, QUANTIZERS[n].summary) for n in sorted(QUANTIZERS)],
        "model": [(n, MODELS[n].summary) for n in sorted(MODELS)],
        "data": [(n, "") for n in config_options("data")] + [(f"(kind) {k}", "") for k in dataset_kinds()],
        "schedule": [(n, "") for n in config_options("schedule")],
        "experiment": [(n, "") for n in config_options("experiment")],
        "activation": [(n, "") for n in activation_names()],
        "surrogate": [(n, (SURROGATES[n].__doc__ or "").strip().splitlines()[0]) for n in sorted(SURROGATES)],
        "trainer": [(n, "") for n in config_options("trainer")],
    }
    if group is not None and group not in sections:
        from binexp.errors import BinexpError

        raise BinexpError(f"unknown group {group!r}; choose one of: {', '.join(sections)}")
    for name, rows in sections.items():
        if group and name != group:
            continue
        print(f"{name}:")
        for key, summary in rows:
            print(f"  {key:<22} {summary}".rstrip())
