"""Test-only callbacks for tests/integration/test_cluster.py, loaded by the CLI in a subprocess
through ``+callbacks.<name>._target_=tests.integration.cluster_callbacks.<Class>`` (the test puts
the repository on PYTHONPATH). Each acts only when its environment variable is set, so the second
run of the same command runs without them."""

from __future__ import annotations

import os
import signal

from lightning.pytorch.callbacks import Callback


class EpochLog(Callback):
    """Appends every started epoch to ``<run dir>/epochs_started.txt``; with ``BINEXP_TEST_KILL``
    = ``<text in the run dir's name>:<epoch>`` it SIGKILLs its own process (the whole sweep) when
    that epoch starts in that job, after the previous epoch's checkpoints were written."""

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        with open(os.path.join(trainer.default_root_dir, "epochs_started.txt"), "a") as f:
            f.write(f"{trainer.current_epoch}\n")
        where, _, epoch = os.environ.get("BINEXP_TEST_KILL", "").rpartition(":")
        if where and where in os.path.basename(trainer.default_root_dir) and trainer.current_epoch == int(epoch):
            os.kill(os.getpid(), signal.SIGKILL)


class RequeueSignal(Callback):
    """With ``BINEXP_TEST_SIGUSR1=<epoch>``: at the end of that epoch's validation, sends SIGUSR1 (what
    SLURM sends before a time limit, ``--signal=USR1@...``) to its own process, as SLURM would."""

    def on_validation_end(self, trainer, pl_module) -> None:
        epoch = os.environ.get("BINEXP_TEST_SIGUSR1")
        if epoch and not trainer.sanity_checking and trainer.current_epoch == int(epoch):
            os.kill(os.getpid(), signal.SIGUSR1)
