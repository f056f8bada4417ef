"""The README's reviewers' tables (RBNN and FleXOR, 38 questions): every question has a command
and every command runs as written, checked here without training: each ``binexp train`` composes
and validates (every job of a sweep), each table script exists and its whole sweep composes at
smoke scale, each ``binexp summary`` of overrides runs through the CLI's entry and prints what
its row quotes, and each ``plot``/``report``/``summary --run`` reads a directory an earlier
command of the same row writes (so a typo in a figure, a table, a flag or a key fails here)."""

from __future__ import annotations

import functools
import importlib
import re
import shlex
import sys
from pathlib import Path

import pytest

from binexp.cli import main as cli_main
from binexp.preflight import check_config, expand_sweeps

REPO = Path(__file__).resolve().parents[2]
SECTION = (REPO / "README.md").read_text(encoding="utf-8").split("## Reviewers' questions", 1)[1].split("\n## ", 1)[0]
ROWS = [line for line in SECTION.splitlines() if re.match(r"\| \d+ \| ", line)]
sys.path.insert(0, str(REPO / "scripts"))


def cells(row: str) -> list[str]:
    return [c.strip() for c in row.strip("| ").split(" | ")]


def commands(row: str) -> list[list[str]]:
    return [shlex.split(c) for c in re.findall(r"`([^`]+)`", cells(row)[2]) if c.startswith(("binexp ", "python "))]


def test_38_numbered_questions_each_with_a_command_detection_out_of_scope():
    assert [int(cells(r)[0]) for r in ROWS] == list(range(1, 39))
    no_command = [cells(r)[1] for r in ROWS if not commands(r)]
    assert no_command == ["Detection, Mask R-CNN (R1)"]
    assert "out of scope" in next(cells(r)[2] for r in ROWS if not commands(r))


@functools.cache
def composes(args: tuple[str, ...]) -> int:
    """Every job of ``binexp train <args>`` composes, validates and finds its data; the job count."""
    from binexp.commands.train import check_flags, split_args

    flags, overrides = split_args(list(args))
    check_flags(flags)
    variants = expand_sweeps([o for o in overrides if not o.startswith("hydra.")], "-m" in flags)
    for variant in variants:
        check_config(variant)
    return len(variants)


def check_script(words: list[str]) -> None:
    script = REPO / words[1]
    assert script.is_file(), words
    if script.name == "tables.py":
        from tables import MODEL_SWEEPS, SMOKE, TABLES

        name = words[2]
        assert name in TABLES and "--smoke" in words, words
        models = MODEL_SWEEPS.get(name, ())
        sweep = ["-m", "experiment=" + ",".join(TABLES[name][1]), *(["model=" + ",".join(models)] if models else [])]
        assert composes((*sweep, *SMOKE)) == len(TABLES[name][1]) * max(1, len(models))
    elif script.name == "angular_bias_two_stage.py":
        module = importlib.import_module("angular_bias_two_stage")
        assert words[2:] == ["--smoke"]
        from binexp.config import validate
        from binexp.preflight import compose

        for _, overrides in module.runs(Path("outputs/check"), 1.0):  # stage 1's checkpoint comes from its run:
            validate(compose([*overrides, *module.SMOKE]))  # compose and validate, no checkpoint read
    else:  # a benchmark: it imports and its arguments parse
        module = importlib.import_module(script.stem)
        argv, sys.argv = sys.argv, [script.name, *words[2:], "--help"]
        try:
            with pytest.raises(SystemExit) as e:
                module.main()
        finally:
            sys.argv = argv
        assert e.value.code == 0


def quoted(text: str) -> list[str]:
    return re.findall(r'"([^"]+)"', text)


@pytest.mark.slow  # ~100 s in all: about 120 compositions and 5 summaries
@pytest.mark.parametrize("row", ROWS, ids=[f"q{cells(r)[0]}" for r in ROWS])
def test_every_command_runs_as_written(row, capsys):
    written: set[str] = set()
    printed = []
    for words in commands(row):
        if words[0] == "python":
            check_script(words)
            continue
        verb, args = words[1], words[2:]
        if verb == "train":
            composes(tuple(args))
            written |= {a.split("=", 1)[1] for a in args if a.startswith(("hydra.run.dir=", "hydra.sweep.dir="))}
        elif verb == "summary" and args[:1] != ["--run"]:
            capsys.readouterr()
            assert cli_main(words[1:]) == 0, words
            printed.append(capsys.readouterr().out)
        elif verb in ("summary", "plot", "report"):
            target = args[1] if args[:1] == ["--run"] else args[0]
            assert target in written, f"{words}: no earlier command of this row writes {target}"
            if verb == "plot":
                from binexp.analysis.plots import FIGURES

                assert args[1] in FIGURES, words
        else:
            pytest.fail(f"unchecked command {words}")
    if printed:  # what the row quotes from a summary is what it prints (runs of spaces as one)
        out = " ".join("".join(printed).split())
        assert [q for q in quoted(cells(row)[3]) if " ".join(q.split()) not in out] == []
