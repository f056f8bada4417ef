"""``binexp <verb> ...``: a thin dispatcher. Everything after ``train`` goes to Hydra unchanged
(``-m``, ``--cfg job``, ``hydra.*``), after a pre-flight check that turns bad input into one
line and exit code 2 before anything is written.

DDP: Lightning re-executes ``sys.argv`` for ranks > 0 without the verb; the verb travels in the
environment (``BINEXP_VERB``), which child processes inherit."""

from __future__ import annotations

import os
import sys

VERB_ENV = "BINEXP_VERB"

HELP = """usage: binexp <verb> [args]    (binexp --version)

verbs:
  train [overrides]     train one configuration, or a sweep with -m (Hydra overrides, e.g.
                        binexp train quantizer=xnor model=resnet20 data=synthetic trainer.max_epochs=2)
                        -v (or verbose=true) shows Lightning's own output and warnings too
                        resume=<run dir> continues a run from its checkpoints/last.ckpt
  report <dir>...       the runs under these run/sweep directories as one table (seeds folded,
                        the paper's number beside ours): --by, --metric, --format md|csv|latex, --plot DIR, --alpha
  summary [overrides]   bit-aware model summary of the same config as train: parameters by bit
                        width, memory, MACs split into binary and full precision, training-only state
  plot <dir> <figure>   a paper figure from a run's or sweep's TensorBoard events / metrics.json:
                        quant_error, weight_hist, alpha, angular_bias, flexor_stanh, flexor_ntap
  export <run> <out>    pack a FleXOR run's encrypted bits + alphas into <out> and check that
                        integer-XOR decryption equals the training forward
  status <sweep dir>    one line per job of a sweep: overrides, status (completed, running, dead,
                        interrupted, failed, not started), epoch reached, best accuracy, last update
  list [group]          list the registered names and config options (quantizer, model, data,
                        schedule, experiment, surrogate)

Runs land in outputs/runs/, sweeps in outputs/multiruns/; `tensorboard --logdir outputs` shows them.
`binexp train --help` shows the config groups and options (Hydra's help).
"""

# Hydra flags that only print or that change where configs come from: no pre-flight for them.
_PASSTHROUGH_FLAGS = {"--help", "-h", "--hydra-help", "--info", "-i", "--cfg", "-c", "--resolve", "-p", "--package",
                      "--shell-completion", "-sc", "--config-path", "-cp", "--config-name", "-cn", "--config-dir",
                      "-cd", "--version", "--experimental-rerun"}
_INFO_CHOICES = {"all", "config", "defaults", "defaults-tree", "plugins", "searchpath"}
_VALUE_FLAGS = {"--cfg", "-c", "--package", "-p", "--info", "-i", "--config-path", "-cp", "--config-name", "-cn",
                "--config-dir", "-cd", "--shell-completion", "-sc", "--experimental-rerun"}


def fail(message: str, code: int = 2) -> int:
    print(f"binexp: error: {message}", file=sys.stderr)
    return code


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


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in ("--version", "-V"):
        from binexp import __version__

        print(f"binexp {__version__}")
        return 0
    if args and args[0] in VERBS:
        verb, rest = args[0], args[1:]
    elif os.environ.get(VERB_ENV) in VERBS and args and args[0] not in ("-h", "--help"):
        verb, rest = os.environ[VERB_ENV], args  # a DDP child re-executed by Lightning
    elif not args or args[0] in ("-h", "--help", "help"):
        print(HELP)
        return 0
    else:
        return fail(f"unknown verb {args[0]!r}; choose one of: {', '.join(VERBS)} (binexp --help)")
    try:
        return VERBS[verb](rest) or 0
    except KeyboardInterrupt:  # Ctrl-C before a run started (or in another verb): one line, no traceback
        return fail("interrupted", 130)
    except BrokenPipeError:  # e.g. `binexp report ... | head`: the reader has gone, stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as e:  # noqa: BLE001 - binexp.errors imports Hydra: only when something failed
        from binexp.errors import BinexpError

        if isinstance(e, BinexpError):
            return fail(str(e))
        raise


def cmd_train(args: list[str]) -> int:
    os.environ[VERB_ENV] = "train"
    from binexp.preflight import preflight, resume_args

    flags, overrides = split_args(args)
    if "-v" in flags or "--verbose" in flags:  # binexp's own flag, not Hydra's: Lightning's output back
        flags = [f for f in flags if f not in ("-v", "--verbose")]
        overrides = [o for o in overrides if not o.startswith("verbose=")] + ["verbose=true"]
    if any(o.startswith("resume=") for o in overrides):
        flags, overrides = resume_args(flags, overrides)
    multirun = "-m" in flags or "--multirun" in flags
    if not (set(flags) & _PASSTHROUGH_FLAGS):
        preflight(overrides, multirun=multirun)
    from binexp.preflight import swept_keys
    from binexp.train import SWEPT_ENV, hydra_train

    os.environ[SWEPT_ENV] = ",".join(swept_keys(overrides)) if multirun else ""  # names the sweep's job dirs

    sys.argv = [sys.argv[0], *flags, *overrides]
    hydra_train()
    return 0


def cmd_list(args: list[str]) -> int:
    from binexp.listing import print_listing

    print_listing(args[0] if args else None)
    return 0


def cmd_summary(args: list[str]) -> int:
    from binexp.summary import main as summary_main

    return summary_main(args)


def cmd_report(args: list[str]) -> int:
    from binexp.report import main as report_main

    return report_main(args)


def cmd_export(args: list[str]) -> int:
    from binexp.quant.flexor_export import main as export_main

    return export_main(args)


def cmd_status(args: list[str]) -> int:
    from binexp.commands.status import main as status_main

    return status_main(args)


def cmd_plot(args: list[str]) -> int:
    from binexp.commands.plot import main as plot_main

    return plot_main(args)


VERBS = {"train": cmd_train, "report": cmd_report, "summary": cmd_summary, "list": cmd_list, "export": cmd_export,
         "plot": cmd_plot, "status": cmd_status}


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
