"""The one exception type for bad user input: its message is the single line the user sees."""

from hydra.errors import CompactHydraException

from binexp.suggest import did_you_mean  # noqa: F401  (re-exported: callers import it from here)


class BinexpError(CompactHydraException):
    """Bad input (config value, dataset, checkpoint, run directory). ``str(err)`` is one line
    that names the problem and how to fix it; the CLI prints it without a traceback."""
