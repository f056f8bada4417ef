"""The end of a sweep run by a submitit launcher (``hydra/launcher=local`` or ``slurm``): its jobs
ran in other processes, whose lines went to ``<sweep dir>/.submitit/<job id>/``, so the sweep
process says how they ended, one line per job (``binexp status``'s table). It also removes the
empty ``.submitit/%j`` folder submitit's local executor leaves (it creates its folder before
putting the job id into the name; each job's logs are in ``.submitit/<job id>/``).
A Hydra callback (``hydra.callbacks.sweep_end`` in ``conf/train.yaml``); light to import."""

from __future__ import annotations

from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf


def submitit_launcher(config: DictConfig) -> bool:
    target = str(OmegaConf.select(config, "hydra.launcher._target_", default="") or "")
    return "submitit" in target or target.startswith("hydra_plugins.binexp_launchers.")


def remove_unfilled_folder(config: DictConfig) -> None:
    """``hydra.launcher.submitit_folder`` itself, with its ``%j`` unreplaced, if it is an empty folder."""
    folder = OmegaConf.select(config, "hydra.launcher.submitit_folder", default=None)
    if not folder or "%" not in Path(str(folder)).name:
        return
    path = Path(str(folder))
    if path.is_dir() and not path.is_symlink() and not any(path.iterdir()):
        path.rmdir()


class SweepEnd(Callback):
    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        if not submitit_launcher(config):
            return  # the basic launcher runs the jobs here: their own lines were printed
        remove_unfilled_folder(config)
        from binexp.commands.status import format_rows, job_rows

        sweep = Path(str(config.hydra.sweep.dir))
        rows = job_rows(sweep)
        done = sum(r["status"] == "completed" for r in rows)
        print(f"sweep finished: {done} of {len(rows)} jobs completed in {sweep} (job logs: {sweep / '.submitit'})")
        print("\n".join(format_rows(rows)), flush=True)


__all__ = ["SweepEnd", "remove_unfilled_folder", "submitit_launcher"]
