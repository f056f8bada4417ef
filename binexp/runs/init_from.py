"""``init_from=<run dir or checkpoint>``: start a run from an earlier run's weights (two-stage
training: stage 1 with binary activations and real weights, stage 2 fully binary).

Tensors are matched by name. A tensor present in both with the same shape is *loaded*; one only
in the new model is *new* (e.g. RBNN's rotation state when stage 2 switches method); one only in
the old checkpoint is *skipped*. The same name with a different shape, or a different
architecture, is a mismatch and stops the run before it starts."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from torch import nn

from binexp.errors import BinexpError
from binexp.runs import checkpoint


@dataclass
class InitReport:
    source: str
    loaded: list[str] = field(default_factory=list)
    new: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"source": self.source, "loaded": len(self.loaded), "new": self.new, "skipped": self.skipped}

    def summary(self) -> str:
        """One log line, e.g. ``init_from <ckpt>: loaded 120 tensors, new 2 (net.a, net.b), skipped 0``."""

        def names(keys: list[str]) -> str:
            return f" ({', '.join(keys[:6])}{', ...' if len(keys) > 6 else ''})" if keys else ""

        return (
            f"init_from {self.source}: loaded {len(self.loaded)} tensors, new {len(self.new)}{names(self.new)}, "
            f"skipped {len(self.skipped)}{names(self.skipped)}"
        )


def resolve_checkpoint(source: str | Path) -> Path:
    """A checkpoint file, or a run directory (its checkpoints/last.ckpt)."""
    return checkpoint.locate(source, "init_from")


def read_checkpoint(path: Path) -> dict:
    return checkpoint.load(path, "init_from")


def source_model_name(ckpt: dict) -> str | None:
    run_config = (ckpt.get("hyper_parameters") or {}).get("run_config") or {}
    return (run_config.get("model") or {}).get("name")


def check_compatible(ckpt: dict, path: Path, model_name: str) -> None:
    src = source_model_name(ckpt)
    if src is not None and src != model_name:
        raise BinexpError(
            f"init_from: {path} was trained with model={src}, this run uses model={model_name}; "
            f"fix: use the same model in both stages"
        )


def load_compatible(module: nn.Module, source: str | Path, model_name: str) -> InitReport:
    """Copy every same-name, same-shape network tensor (``net.*``: parameters and BatchNorm
    statistics) of the source checkpoint into ``module``."""
    path = resolve_checkpoint(source)
    ckpt = read_checkpoint(path)
    check_compatible(ckpt, path, model_name)
    # only the network: metric states and anything else of the old run stay behind
    src = {k: v for k, v in ckpt["state_dict"].items() if k.startswith("net.")}
    dst = {k: v for k, v in module.state_dict().items() if k.startswith("net.")}
    report = InitReport(source=str(path))
    mismatched = [k for k in src if k in dst and src[k].shape != dst[k].shape]
    if mismatched:
        k = mismatched[0]
        raise BinexpError(
            f"init_from: {k} has shape {tuple(src[k].shape)} in {path} but {tuple(dst[k].shape)} here "
            f"({len(mismatched)} mismatched tensors); "
            f"fix: use the same model, widths and number of classes in both stages"
        )
    shared = [k for k in dst if k in src]
    if not shared:
        raise BinexpError(f"init_from: no tensor of {path} matches this model; fix: use the same model in both stages")
    # through load_state_dict, so the layers' load hooks run (FleXOR rebuilds its gather form of M)
    module.load_state_dict({k: src[k] for k in shared}, strict=False)
    report.loaded = shared
    report.new = [k for k in dst if k not in src]
    report.skipped = [k for k in src if k not in dst]
    return report
