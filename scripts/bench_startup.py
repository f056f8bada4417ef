"""Wall time of the CLI commands that must answer at once: ``binexp --help``, ``binexp list``,
``binexp list experiment`` and ``binexp --version`` (each a fresh process, as a user runs it).

    python scripts/bench_startup.py            # median of 11 runs per command
    python scripts/bench_startup.py -n 21

Prints the median, min and max wall time per command, the CPU model and core count, and exits
non-zero when a median is 1 s or more."""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

COMMANDS = [["--help"], ["--version"], ["list"], ["list", "experiment"]]


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


def time_once(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    r = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {r.stderr.strip()[-500:]}")
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=11, help="runs per command (default 11)")
    ns = parser.parse_args(argv)
    base = binexp_command()
    print(
        f"machine: {cpu_model()}, {os.cpu_count()} cores; load average {os.getloadavg()[0]:.2f}; "
        f"python {sys.version.split()[0]}"
    )
    print(f"{'command':<28} {'median s':>9} {'min s':>7} {'max s':>7}")
    worst = 0.0
    for args in COMMANDS:
        time_once(base + args)  # warm the file cache
        times = [time_once(base + args) for _ in range(ns.n)]
        med = statistics.median(times)
        worst = max(worst, med)
        print(f"{'binexp ' + ' '.join(args):<28} {med:>9.3f} {min(times):>7.3f} {max(times):>7.3f}")
    return 0 if worst < 1.0 else 1


if __name__ == "__main__":
    sys.exit(main())
