"""``binexp list``: the registered names and the config options that exist (read from the source
and the YAML files by :mod:`binexp.source_index`, so it never imports torch)."""

from __future__ import annotations

from binexp.source_index import config_options  # noqa: F401  (re-exported: tests and scripts import it from here)


def _experiment_rows() -> list[tuple[str, str]]:
    from binexp.source_index import experiment_meta

    rows = []
    for name in config_options("experiment"):
        meta = experiment_meta(name)
        value = meta.get("paper_value")
        source = str(meta.get("source") or "").split(";")[0].split(",")[0].strip()  # the authors
        source = source if len(source) <= 24 else source[:23].rstrip() + "…"
        parts = [source, str(meta.get("table") or "").strip()]
        text = " | ".join(p for p in parts if p)
        if value is not None:
            text = f"{value:<6} {text}"
        elif text:
            text = f"{'–':<6} {text}"
        rows.append((name, text))
    return rows


def sections(group: str | None = None) -> dict[str, list[tuple[str, str]]]:
    from binexp import source_index as catalog

    builders = {
        "quantizer": lambda: sorted(catalog.quantizers().items()),
        "model": lambda: sorted(catalog.models().items()),
        "data": lambda: (
            [(n, "") for n in config_options("data")] + [(f"(kind) {k}", "") for k in catalog.dataset_kinds()]
        ),
        "schedule": lambda: [(n, "") for n in config_options("schedule")],
        "experiment": _experiment_rows
        if group == "experiment"
        else lambda: [(n, "") for n in config_options("experiment")],
        "activation": lambda: sorted(catalog.activations().items()),
        "surrogate": lambda: sorted(catalog.surrogates().items()),
        "trainer": lambda: [(n, "") for n in config_options("trainer")],
    }
    if group is not None and group not in builders:
        from binexp.errors import BinexpError
        from binexp.suggest import did_you_mean

        hint = did_you_mean(group, builders, "binexp list ")
        raise BinexpError(f"unknown group {group!r}{hint}; choose one of: {', '.join(builders)}")
    return {name: build() for name, build in builders.items() if group in (None, name)}


def _fit(line: str, width: int) -> str:
    line = line.rstrip()
    return line if len(line) <= width else line[: width - 1].rstrip() + "…"


def print_listing(group: str | None = None) -> None:
    import shutil

    width = max(shutil.get_terminal_size((100, 24)).columns, 100)  # a line per entry, cut to the terminal
    for name, rows in sections(group).items():
        if name == "experiment" and group == "experiment":
            print("experiment:                       paper value, authors | table")
        else:
            print(f"{name}:")
        for key, summary in rows:
            print(_fit(f"  {key:<32} {summary}" if name == "experiment" else f"  {key:<22} {summary}", width))


def main(args: list[str]) -> int:
    print_listing(args[0] if args else None)
    return 0
