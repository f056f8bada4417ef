"""A run's TensorBoard events read back by the names binexp logs (``val/acc1``,
``angular_bias/<layer>``): TensorBoard's own names are ``binexp.tb_tags``'s."""

from __future__ import annotations

from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from binexp.tb_tags import logged_tag, tb_tag


class RunEvents:
    """``Tags()``, ``Scalars(tag)``, ``Histograms(tag)`` of the events in a run directory, by logged name."""

    def __init__(self, run: Path, **size_guidance: int) -> None:
        files = sorted(Path(run).glob("events.out.tfevents.*"))
        assert files, sorted(p.name for p in Path(run).iterdir())  # the events lie in the run directory
        guidance = {"scalars": 0, "histograms": 0, "tensors": 0, **size_guidance}
        self.acc = EventAccumulator(str(run), size_guidance=guidance)
        self.acc.Reload()

    def Tags(self) -> dict:  # noqa: N802 (EventAccumulator's name)
        tags = dict(self.acc.Tags())
        tags["scalars"] = [logged_tag(t) for t in tags["scalars"]]
        return tags

    def Scalars(self, tag: str):  # noqa: N802
        return self.acc.Scalars(tb_tag(tag))

    def __getattr__(self, name: str):
        return getattr(self.acc, name)
