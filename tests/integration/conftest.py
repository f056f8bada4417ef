"""Fixtures shared by the integration tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def figs(monkeypatch):
    """What each saved figure looked like: per axis its title, x and y scales and labels, x tick
    labels, y limits and legend texts, and the figure's texts (the smoke/synthetic note)."""
    from binexp.analysis import plots

    seen: list[dict] = []
    save = plots._save

    def spy(fig, path, note="", **kw):
        out = save(fig, path, note, **kw)
        seen.append(
            {
                "axes": [
                    {
                        "title": ax.get_title(),
                        "xlabel": ax.get_xlabel(),
                        "yscale": ax.get_yscale(),
                        "xscale": ax.get_xscale(),
                        "ylabel": ax.get_ylabel(),
                        "xticks": [t.get_text() for t in ax.get_xticklabels()],
                        "xtickvalues": list(ax.get_xticks()),
                        "ylim": ax.get_ylim(),
                        "notes": [t.get_text() for t in ax.texts],
                        "legend": [t.get_text() for t in ax.get_legend().get_texts()] if ax.get_legend() else [],
                    }
                    for ax in fig.axes
                    if ax.axison
                ],
                "texts": [t.get_text().replace("\n", " ") for t in fig.texts if t is not fig._suptitle],
            }
        )
        return out

    monkeypatch.setattr(plots, "_save", spy)
    return seen
