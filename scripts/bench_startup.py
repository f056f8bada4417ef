"""Wall and CPU time of the CLI commands that must answer at once: ``binexp --help``, ``binexp list``,
``binexp list experiment``, ``binexp --version`` and the typos answered with "did you mean" (a
misspelt verb, list group, train flag, plot figure, config key, bare key, group option, choice
value) and ``binexp train --cfg job``, each a fresh process, as a user runs it. The config typos
and ``--cfg job`` compose and check the config without importing torch (``binexp.schema_source``).

    python scripts/bench_startup.py            # median of 11 runs per command
    python scripts/bench_startup.py -n 21

Prints the median, min and max wall time per command, the CPU model and core count, and exits
non-zero when a gated command's median wall or CPU time is 1 s or more."""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

# (arguments, expected exit code, gated by the 1 s limit)
COMMANDS = [
    (["--help"], 0, True),
    (["--version"], 0, True),
    (["list"], 0, True),
    (["list", "experiment"], 0, True),
    (["reprot"], 2, True),
    (["list", "quantiser"], 2, True),
    (["train", "--cfgg", "job"], 2, True),
    (["plot", ".", "quant_eror"], 2, True),
    (["train", "trainer.max_epoch=3"], 2, True),
    (["train", "+trainer.max_epoch=3"], 2, True),
    (["train", "lr=0.1"], 2, True),
    (["train", "quantizer=xnr"], 2, True),
    (["train", "quantizer.weight_grad=exactt"], 2, True),
    (["train", "model.widht=2"], 2, True),
    (["train", "--cfg", "job"], 0, True),
]


def binexp_command() -> list[str]:
    exe = Path(sys.executable).parent / "binexp"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "binexp"]


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()


def time_once(cmd: list[str], code: int = 0) -> tuple[float, float]:
    """(wall s, CPU s of the child: user + system)."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    r = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if r.returncode != code:
        raise SystemExit(f"{' '.join(cmd)} exited {r.returncode}, not {code}: {r.stderr.strip()[-500:]}")
    return elapsed, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=11, help="runs per command (default 11)")
    ns = parser.parse_args(argv)
    base = binexp_command()
    print(
        f"machine: {cpu_model()}, {os.cpu_count()} cores; load average {os.getloadavg()[0]:.2f}; "
        f"python {sys.version.split()[0]}"
    )
    print(f"{'command':<44} {'median s':>9} {'min s':>7} {'max s':>7} {'CPU s':>7}")
    worst = 0.0
    for args, code, gated in COMMANDS:
        time_once(base + args, code)  # warm the file cache
        runs = [time_once(base + args, code) for _ in range(ns.n if gated else max(1, ns.n // 4))]
        times = [wall for wall, _ in runs]
        med, cpu = statistics.median(times), statistics.median(c for _, c in runs)
        if gated:
            worst = max(worst, med, cpu)
        name = "binexp " + " ".join(args) + ("" if gated else " (not gated)")
        print(f"{name:<44} {med:>9.3f} {min(times):>7.3f} {max(times):>7.3f} {cpu:>7.3f}")
    return 0 if worst < 1.0 else 1


if __name__ == "__main__":
    sys.exit(main())
