"""Optional dependencies (``pip install 'binexp[<extra>]'``): one-line errors when missing."""

from __future__ import annotations

import importlib

from binexp.errors import BinexpError

# extra -> (what needs it, modules that must import)
EXTRAS = {
    "slurm": ("hydra/launcher=slurm|local", ("submitit", "hydra_plugins.hydra_submitit_launcher.submitit_launcher")),
    "wandb": ("logger=wandb", ("wandb",)),
    "mlflow": ("logger=mlflow", ("mlflow", "sqlalchemy", "alembic")),
    "photos": ("data=photocrops", ("skimage.data",)),
}


def require(extra: str, what: str | None = None) -> None:
    """Import the modules of ``extra`` or raise the one-line error with the install command."""
    needed_by, modules = EXTRAS[extra]
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError:
            raise BinexpError(
                f"{what or needed_by} needs the optional package {name.split('.')[0]!r}, which is not installed; "
                f"fix: pip install 'binexp[{extra}]'"
            ) from None


def check_launcher_overrides(overrides: list[str]) -> None:
    """``hydra/launcher=slurm`` or ``=local`` without hydra-submitit-launcher: one line, before Hydra
    tries (and fails in many lines) to compose the plugin's config."""
    for o in overrides:
        key, _, value = o.lstrip("+~").partition("=")
        if key == "hydra/launcher" and value in ("slurm", "local"):
            require("slurm", f"hydra/launcher={value}")
