"""The security tests run binexp in-process through the CLI's entry function."""

from __future__ import annotations

import sys

import pytest

from binexp.cli import main


@pytest.fixture
def cli(monkeypatch, tmp_path, capsys):
    """``binexp <args>`` in-process from tmp_path: (exit code, stderr lines)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BINEXP_VERB", "")
    monkeypatch.setattr(sys, "argv", ["binexp"])

    def run(args: list[str]) -> tuple[int, list[str]]:
        capsys.readouterr()
        try:
            code = main(args)
        except SystemExit as e:  # an error found inside a Hydra job: hydra_train exits 1
            code = e.code
        captured = capsys.readouterr()
        run.out = captured.out  # type: ignore[attr-defined]  # what the command printed, for tests that read it
        err = captured.err
        assert "Traceback" not in err, err
        return code, [line for line in err.splitlines() if line.strip()]

    return run
