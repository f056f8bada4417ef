"""``python -m tests.support.launch <binexp args>``: ``binexp`` itself, with extra callbacks added
to every run it trains through :data:`binexp.run.EXTRA_CALLBACKS` (Python only: no config,
override or run directory can add a callback this way).

The callbacks come from the environment variable :data:`ENV`, a JSON list of
``[dotted class name, {keyword arguments}]``, so that the processes binexp starts inherit them:
Lightning's DDP children re-execute ``python -m tests.support.launch ...``, and Hydra's basic
launcher runs sweep jobs in this process. Tests build the variable with
:func:`callbacks_env`."""

from __future__ import annotations

import functools
import importlib
import json
import os
import sys

ENV = "BINEXP_TEST_CALLBACKS"


def callbacks_env(*specs: tuple[str, dict]) -> dict[str, str]:
    """The environment entry that adds ``specs`` (``(class name, kwargs)``) to every run."""
    return {ENV: json.dumps([[target, kwargs] for target, kwargs in specs])}


def _factory(target: str, kwargs: dict):
    module, _, name = target.rpartition(".")
    return functools.partial(getattr(importlib.import_module(module), name), **kwargs)


def main() -> int:
    from binexp import run
    from binexp.cli import main as binexp_main

    for target, kwargs in json.loads(os.environ.get(ENV) or "[]"):
        run.EXTRA_CALLBACKS.append(_factory(target, kwargs))
    return binexp_main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
