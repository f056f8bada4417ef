"""binexp's launchers for ``hydra/launcher=slurm`` and ``=local``: hydra-submitit-launcher's, with
every job waited for and a job that ends without a result failing alone (:mod:`binexp.launchers`).
Hydra loads launchers from the ``hydra_plugins`` package only, so the classes live here."""

from __future__ import annotations

try:
    from hydra_plugins.hydra_submitit_launcher import submitit_launcher as _submitit
except ImportError:  # binexp[slurm] not installed: hydra/launcher=slurm|local say so before Hydra starts
    _submitit = None

if _submitit is not None:
    from binexp.launchers import EveryJob

    class SlurmLauncher(EveryJob, _submitit.SlurmLauncher):
        pass

    class LocalLauncher(EveryJob, _submitit.LocalLauncher):
        pass


def register_with_hydra() -> None:
    """Hydra finds launchers by listing the folders of the ``hydra_plugins`` package; a package
    installed in editable mode (``pip install -e .``, what ``make setup`` does) is reached through an
    import hook that such a listing misses, so ``hydra/launcher=slurm|local`` failed with "Unknown
    plugin class" from any folder other than the repository's. ``binexp train`` registers the two
    classes by hand, which finds them however binexp is installed (a no-op without
    hydra-submitit-launcher)."""
    if _submitit is None:
        return
    from hydra.core.plugins import Plugins

    for launcher in (SlurmLauncher, LocalLauncher):
        Plugins.instance().register(launcher)
