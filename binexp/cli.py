"""``binexp <verb> ...``: a thin dispatcher to ``binexp.commands.<verb>.main(args)``; one line and
a non-zero exit for every :class:`~binexp.errors.BinexpError`, no traceback.

DDP: Lightning re-executes ``sys.argv`` for ranks > 0 without the verb; the verb travels in the
environment (``BINEXP_VERB``), which child processes inherit."""

from __future__ import annotations

import os
import sys

from binexp.runs import VERB_ENV

HELP = """usage: binexp <verb> [args]    (binexp --version)

verbs:
  train [overrides]     train one configuration, or a sweep with -m (Hydra overrides, e.g.
                        binexp train quantizer=xnor model=resnet20 data=synthetic trainer.max_epochs=2)
                        -v (or verbose=true) shows Lightning's own output and warnings too
                        resume=<run dir> continues a run from its checkpoints/last.ckpt
  evaluate <run> [data overrides]
                        evaluate a trained run (or .ckpt) on its data, another dataset or split
                        (--split train) without training: top-1/top-5, loss, per-class accuracy into
                        <run>/evaluations/<name>.json; data=cifar10c: every corruption and severity
  report <dir>...       the runs under these run/sweep directories as one table (seeds folded,
                        the paper's number beside ours): --by, --metric, --format md|csv|latex, --plot DIR, --alpha
  summary [overrides]   bit-aware model summary of the same config as train: parameters by bit
                        width, memory, MACs split into binary and full precision, training-only state
  plot <dir> <figure>   a paper figure from a run's or sweep's TensorBoard events / metrics.json:
                        quant_error, weight_hist, alpha, angular_bias, flexor_stanh, flexor_ntap
  export <run> <out>    pack a FleXOR run's encrypted bits + alphas into <out> and check that
                        integer-XOR decryption equals the training forward
  status <dir>...       one line per job of a sweep (or for one run directory): overrides, status (completed,
                        running, dead, interrupted, failed, not started), epoch reached, best accuracy, last update
  list [group]          list the registered names and config options (quantizer, model, data,
                        schedule, experiment, surrogate)

Runs land in outputs/runs/, sweeps in outputs/multiruns/; `tensorboard --logdir outputs` shows them.
`binexp train --help` shows the config groups and options (Hydra's help).
"""


def fail(message: str, code: int = 2) -> int:
    print(f"binexp: error: {message}", file=sys.stderr)
    return code


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
        from binexp.suggest import did_you_mean

        hint = did_you_mean(args[0], VERBS, "binexp ")
        return fail(f"unknown verb {args[0]!r}{hint or ''}; choose one of: {', '.join(VERBS)} (binexp --help)")
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


def _verb(module: str):
    """``binexp <verb>`` runs ``binexp.commands.<module>.main(args)``, imported only when called."""

    def run(args: list[str]) -> int:
        import importlib

        return importlib.import_module(f"binexp.commands.{module}").main(args)

    return run


VERBS = {name: _verb(name) for name in ("train", "evaluate", "report", "summary", "plot", "export", "status", "list")}


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
