"""One module per ``binexp`` verb: ``main(args: list[str]) -> int``."""
