""" "Did you mean": the closest spellings of a word among the valid ones (no heavy imports, so the
CLI can answer a misspelt verb or flag before it loads anything else)."""

from __future__ import annotations

import difflib


def did_you_mean(word: str, candidates, prefix: str = "") -> str:
    """``"; did you mean <prefix><match>?"`` for the closest candidates (difflib), or ``""``."""
    close = difflib.get_close_matches(word, sorted(set(candidates)), n=2, cutoff=0.6)
    return "; did you mean " + " or ".join(f"{prefix}{c}" for c in close) + "?" if close else ""


__all__ = ["did_you_mean"]
