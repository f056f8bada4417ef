"""The one exception type for bad user input: its message is the single line the user sees."""

from hydra.errors import CompactHydraException


class BinexpError(CompactHydraException):
    """Bad input (config value, dataset, checkpoint, run directory). ``str(err)`` is one line
    that names the problem and how to fix it; the CLI prints it without a traceback."""


def did_you_mean(word: str, candidates, prefix: str = "") -> str:
    """``"; did you mean <prefix><match>?"`` for the closest candidates (difflib), or ``""``."""
    import difflib

    close = difflib.get_close_matches(word, sorted(set(candidates)), n=2, cutoff=0.6)
    return "; did you mean " + " or ".join(f"{prefix}{c}" for c in close) + "?" if close else ""
