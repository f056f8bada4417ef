"""``binexp export <run dir | .ckpt> <out.flexor>``: FleXOR's packed sub-1-bit weights
(:mod:`binexp.quant.flexor_export`), checked against the training forward."""

from __future__ import annotations

from pathlib import Path

from binexp.quant.flexor_export import flexor_layers, verify_roundtrip


def main(argv: list[str]) -> int:
    """``binexp export <run dir | .ckpt> <out.flexor>``: pack a FleXOR run's weights, rebuild
    them with integer XOR and print the check (sizes, mismatched bits, largest difference)."""
    import argparse
    import json
    import os

    from binexp.errors import BinexpError

    p = argparse.ArgumentParser(
        prog="binexp export",
        description="Pack a FleXOR run's encrypted sign bits and "
        "alphas into one file and check that integer-XOR decryption equals the training forward.",
    )
    p.add_argument("checkpoint", help="a FleXOR run directory (its checkpoints/last.ckpt) or a .ckpt file")
    p.add_argument("out", help="the .flexor file to write (must not exist)")
    args = p.parse_args(argv)
    from binexp.lit.restore import build_module
    from binexp.runs import checkpoint

    path = checkpoint.locate(args.checkpoint, "export")
    out = Path(args.out).expanduser()
    if out.exists():
        raise BinexpError(f"export: {out} already exists; fix: choose another output path (nothing is overwritten)")
    if not out.parent.is_dir():
        raise BinexpError(
            f"export: the folder {out.parent} does not exist; fix: create it first or choose another output path"
        )
    if not os.access(out.parent, os.W_OK):
        raise BinexpError(f"export: cannot write to {out.parent}; fix: choose a writable output folder")
    module = build_module(checkpoint.load(path, "export"), path, "export")
    if not flexor_layers(module.net):
        raise BinexpError(f"export: {path} has no FleXOR layers; fix: export a run trained with quantizer=flexor")
    try:
        result = verify_roundtrip(module.net, out)
    except OSError as e:
        raise BinexpError(
            f"export: cannot write {out} ({e.strerror or e}); fix: free disk space or choose a writable output folder"
        ) from None
    print(json.dumps(result, indent=2))
    return 0
