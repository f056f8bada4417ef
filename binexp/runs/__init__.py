"""The run directory and its life: what it holds, who may write it, how a run is found, resumed
or continued. Nothing here imports torch at import time except the modules that load
checkpoints.

- :mod:`~binexp.runs.layout`: the files and folders of a run directory, the checks that a new
  one is new and writable, and the claim of an output directory by one ``binexp train``;
- :mod:`~binexp.runs.record`: the run lock (alive or dead) and the status record ``metrics.json``;
- :mod:`~binexp.runs.checkpoint`: find a checkpoint, load it weights-only, the config inside it;
- :mod:`~binexp.runs.resume`: ``resume=<run dir>``: which checkpoint, the saved overrides replayed;
- :mod:`~binexp.runs.sweep`: a sweep re-run into its own directory skips, resumes or starts each job;
- :mod:`~binexp.runs.init_from`: ``init_from=``: an earlier run's weights matched by name;
- :mod:`~binexp.runs.allowlist`: the classes a config's ``_target_`` may name;
- :mod:`~binexp.runs.discovery`: the runs under some folders, for report, plot and status.

The environment variables below are how a run's processes hand information to the processes
they start (Lightning's DDP children, Hydra's sweep jobs)."""

VERB_ENV = "BINEXP_VERB"  # a DDP child re-executed by Lightning runs this verb
SWEPT_ENV = "BINEXP_SWEPT_KEYS"  # comma-separated keys of `binexp train -m` (names job dirs, HParams columns)
NEW_RUN_DIR_ENV = "BINEXP_NEW_RUN_DIR"  # the topmost folder `binexp train` made for its run (removed on bad input)

# this process's sweep jobs that ended without a result (binexp.launchers): `binexp train` then exits 1
UNFINISHED_JOBS: list[int] = []
