"""``binexp train [flags] [overrides]``: everything goes to Hydra unchanged (``-m``, ``--cfg job``,
``hydra.*``), after a pre-flight check that turns bad input into one line and exit code 2 before
anything is written; ``resume=<run dir>`` replays that run's saved overrides; ``-v`` brings
Lightning's own output back."""

from __future__ import annotations

import os
import sys

from binexp.runs import NEW_RUN_DIR_ENV, SWEPT_ENV, UNFINISHED_JOBS, VERB_ENV

# Hydra flags that only print or that change where configs come from: no pre-flight for them.
_PASSTHROUGH_FLAGS = {
    "--help",
    "-h",
    "--hydra-help",
    "--info",
    "-i",
    "--cfg",
    "-c",
    "--resolve",
    "-p",
    "--package",
    "--shell-completion",
    "-sc",
    "--config-path",
    "-cp",
    "--config-name",
    "-cn",
    "--config-dir",
    "-cd",
    "--version",
    "--experimental-rerun",
}
_INFO_CHOICES = {"all", "config", "defaults", "defaults-tree", "plugins", "searchpath"}
_VALUE_FLAGS = {
    "--cfg",
    "-c",
    "--package",
    "-p",
    "--info",
    "-i",
    "--config-path",
    "-cp",
    "--config-name",
    "-cn",
    "--config-dir",
    "-cd",
    "--shell-completion",
    "-sc",
    "--experimental-rerun",
}


def split_args(args: list[str]) -> tuple[list[str], list[str]]:
    """(flags, overrides): Hydra's own ``-x``/``--x`` flags and the key=value overrides."""
    flags, overrides, i = [], [], 0
    while i < len(args):
        a = args[i]
        if a.startswith("-"):
            flags.append(a)
            takes_value = a in _VALUE_FLAGS and i + 1 < len(args) and not args[i + 1].startswith("-")
            if a in ("--info", "-i"):
                takes_value = takes_value and args[i + 1] in _INFO_CHOICES
            if takes_value:
                flags.append(args[i + 1])
                i += 1
        else:
            overrides.append(a)
        i += 1
    return flags, overrides


_BINEXP_FLAGS = {"-v", "--verbose", "-m", "--multirun", "--run", "-r"}


def check_flags(flags: list[str]) -> None:
    """An unknown flag is one line with the closest known one (before anything heavy is imported)."""
    known = _PASSTHROUGH_FLAGS | _BINEXP_FLAGS
    for flag in flags:
        if flag.startswith("-") and flag not in known:
            from binexp.errors import BinexpError
            from binexp.suggest import did_you_mean

            hint = did_you_mean(flag, known)
            raise BinexpError(
                f"unknown flag {flag}{hint}; flags: -m (sweep), -v (verbose), --cfg job|hydra|all, "
                f"--info, -p <package>, --help (binexp train --help)"
            )


def check_flag_pairs(flags: list[str], overrides: list[str]) -> None:
    """Flag pairs Hydra refuses with a traceback, as one line each."""
    from binexp.errors import BinexpError

    shown = [f for f in flags if f in ("--cfg", "-c", "--info", "-i", "--shell-completion", "-sc")]
    if shown and ({"-m", "--multirun"} & set(flags)):
        raise BinexpError(
            f"-m with {shown[0]}: Hydra prints one job's config, not a sweep's; "
            f"fix: drop -m and give one value per key (binexp train --cfg job quantizer=xnor)"
        )
    cfg = [flags[i + 1] for i, f in enumerate(flags[:-1]) if f in ("--cfg", "-c")]
    package = {"-p", "--package"} & set(flags)  # one package printed (-p hydra.job): resolves
    run_dir = any(o.lstrip("+").startswith("hydra.run.dir=") for o in overrides)
    if "--resolve" in flags and "hydra" in cfg and not package and not run_dir:
        raise BinexpError(
            "--cfg hydra --resolve: hydra.* interpolates the job's keys (${name} in hydra.run.dir), "
            "which --cfg hydra leaves out; fix: binexp train --cfg all --resolve"
        )


def main(args: list[str]) -> int:
    os.environ[VERB_ENV] = "train"
    os.environ[NEW_RUN_DIR_ENV] = ""  # preflight names the run directory it makes
    flags, overrides = split_args(args)
    check_flags(flags)
    check_flag_pairs(flags, overrides)
    if "-v" in flags or "--verbose" in flags:  # binexp's own flag, not Hydra's: Lightning's output back
        flags = [f for f in flags if f not in ("-v", "--verbose")]
        overrides = [o for o in overrides if not o.startswith("verbose=")] + ["verbose=true"]
    if "verbose=true" not in overrides:
        from binexp.console import ignore_noise_warnings

        ignore_noise_warnings()
    from binexp.runs.checkpoint import read_once  # light: torch is imported by the first read

    try:
        with read_once():  # each checkpoint file is read once while the run starts (resume=, init_from=, a teacher)
            _start(flags, overrides)
    finally:
        unfinished, UNFINISHED_JOBS[:] = bool(UNFINISHED_JOBS), []
    return 1 if unfinished else 0  # a sweep job ended without a result (its line is printed)


def _start(flags: list[str], overrides: list[str]) -> None:
    """The pre-flight checks (resume= replays the run's overrides first), then Hydra's job(s)."""
    from binexp.preflight import preflight

    if any(o.startswith("resume=") for o in overrides):
        from binexp.runs.resume import resume_args  # reads checkpoints: imports torch

        flags, overrides = resume_args(flags, overrides)
    multirun = "-m" in flags or "--multirun" in flags
    if not (set(flags) & _PASSTHROUGH_FLAGS):
        overrides += preflight(overrides, multirun=multirun)  # + the output directory it claimed
    from binexp.preflight import swept_keys

    os.environ[SWEPT_ENV] = ",".join(swept_keys(overrides)) if multirun else ""  # names the sweep's job dirs

    sys.argv = [sys.argv[0], *flags, *overrides]
    if set(flags) & _SHOW_FLAGS:
        show_only()
        return
    if any(o.lstrip("+~").startswith("hydra/launcher=") for o in overrides):
        from hydra_plugins.binexp_launchers import register_with_hydra

        register_with_hydra()
    from binexp.run import hydra_train

    hydra_train()


# flags with which Hydra prints (the config, its help or info) and returns without running the task
_SHOW_FLAGS = {"--cfg", "-c", "--info", "-i", "--help", "-h", "--hydra-help"}


def show_only() -> None:
    """``--cfg job|hydra|all``, ``--info``, ``--help``: Hydra's own output, without importing the
    training code (torch, Lightning): the config composed from the same YAMLs and schema defaults."""
    import hydra

    from binexp.config import register_schemas
    from binexp.runs.sweep import register_resolver

    register_schemas()
    register_resolver()
    hydra.main(config_path="pkg://binexp.conf", config_name="train", version_base="1.3")(_no_task)()


def _no_task(cfg) -> None:
    """Never called: with the flags of :data:`_SHOW_FLAGS` Hydra prints and returns."""
