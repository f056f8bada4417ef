"""``binexp plot <run or sweep dir> <figure>``: a paper figure as a PNG, drawn from the runs'
TensorBoard events and metrics.json (see ``binexp.analysis.plots`` for what each figure shows)."""

from __future__ import annotations

import argparse
from pathlib import Path

from binexp.errors import BinexpError


def _ints(text: str | None) -> list[int] | None:
    if not text:
        return None
    try:
        return [int(x) for x in text.split(",") if x]
    except ValueError:
        raise BinexpError(
            f"plot: --epochs {text!r} is not a comma-separated list of epochs; fix: e.g. --epochs 1,50,100"
        ) from None


def main(args: list[str]) -> int:
    from binexp.analysis.plots import FIGURES

    parser = argparse.ArgumentParser(prog="binexp plot", description=" ".join(__doc__.split()).replace("``", ""))
    parser.add_argument("dir", help="a run directory or a sweep directory")
    parser.add_argument("figure", help=f"one of: {', '.join(FIGURES)}")
    parser.add_argument("--out", default=None, help="folder for the PNGs (default: <dir>/figures)")
    parser.add_argument(
        "--layers", default=None, help="weight_hist: comma-separated layer names (default: first, middle, last)"
    )
    parser.add_argument(
        "--epochs", default=None, help="weight_hist, quant_error: comma-separated epochs (1 = after the first)"
    )
    ns = parser.parse_args(args)
    if ns.figure not in FIGURES:
        from binexp.suggest import did_you_mean

        hint = did_you_mean(ns.figure, FIGURES)
        raise BinexpError(f"plot: unknown figure {ns.figure!r}{hint}; choose one of: {', '.join(FIGURES)}")
    if not Path(ns.dir).expanduser().exists():
        raise BinexpError(
            f"plot: {ns.dir} does not exist; fix: pass a run or sweep directory (e.g. outputs/multiruns/<sweep>)"
        )
    from binexp.analysis.plots import draw

    out = Path(ns.out) if ns.out else Path(ns.dir) / "figures"
    from binexp.safeio import check_real_dir

    check_real_dir(out, f"plot: {'--out ' if ns.out else ''}{out}")
    layers = [x for x in ns.layers.split(",") if x] if ns.layers else None
    paths, _ = draw(ns.figure, Path(ns.dir), out, layers=layers, epochs=_ints(ns.epochs))
    for path in paths:
        print(f"wrote {path}")
    return 0
