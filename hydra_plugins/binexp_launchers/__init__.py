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
