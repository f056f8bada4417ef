"""Artefacts for the security and bad-input tests: a binexp-shaped checkpoint built without
training, and malicious files whose payload only creates a marker file."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import torch
from omegaconf import OmegaConf, open_dict


def fake_checkpoint(path: Path, overrides: list[str] | None = None) -> Path:
    """A checkpoint with what binexp's own hold (state_dict, epoch, hyper_parameters with the
    resolved run config), of an untrained model: enough for init_from, distill.teacher,
    export and the resume pre-flight, in a fraction of a second."""
    from binexp.config import validate
    from binexp.data import build_datamodule
    from binexp.lit.module import ClassifierModule
    from binexp.preflight import compose

    cfg = compose(["data=synthetic", *(overrides or [])])
    with open_dict(cfg):
        cfg.pop("hydra")
    run = validate(cfg)
    classes = build_datamodule(run.data).num_classes
    torch.manual_seed(0)
    module = ClassifierModule(
        run.model, run.quantizer, run.schedule, classes, run_config=OmegaConf.to_container(cfg, resolve=True)
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {
            "state_dict": module.state_dict(),
            "epoch": 0,
            "global_step": 0,
            "hyper_parameters": dict(module.hparams),
            "pytorch-lightning_version": "2.6.0",
        },
        path,
    )
    return path


def fake_run(run_dir: Path, overrides: list[str] | None = None, saved: list[str] | None = None) -> Path:
    """A run directory: .hydra/overrides.yaml (``saved``, default the overrides) and checkpoints/last.ckpt."""
    overrides = overrides or []
    (run_dir / ".hydra").mkdir(parents=True, exist_ok=True)
    lines = saved if saved is not None else ["data=synthetic", *overrides]
    OmegaConf.save(OmegaConf.create(list(lines)), run_dir / ".hydra" / "overrides.yaml")
    fake_checkpoint(run_dir / "checkpoints" / "last.ckpt", overrides)
    return run_dir


class Payload:
    """Unpickling this runs ``touch <marker>`` (through os.system)."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch '{self.marker}'",)


def evil_checkpoint(path: Path, marker: Path) -> Path:
    """A torch zip archive shaped like a checkpoint whose pickle calls os.system on load."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": {}, "epoch": 0, "hyper_parameters": Payload(marker)}, path)
    return path


def evil_cifar_batch(path: Path, marker: Path) -> Path:
    """A CIFAR python batch whose unpickling calls os.system."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump({"data": Payload(marker), "labels": [0]}, f, protocol=2)
    return path


def tree(root: Path) -> dict[str, tuple[int, int]]:
    """Every file and folder under ``root`` with its size and mtime: compare before and after."""
    out = {}
    for p in sorted(Path(root).rglob("*")):
        st = p.lstat()
        out[str(p.relative_to(root))] = (st.st_size if p.is_file() else -1, st.st_mtime_ns)
    return out


def zip_bomb_checkpoint(path: Path, unpacked_mib: int = 64) -> Path:
    """A binexp-shaped checkpoint whose zip entries are deflated: a tensor of ``unpacked_mib`` MiB
    of zeros in a file ~1000x smaller (torch.load inflates it; torch.save never compresses)."""
    import io
    import zipfile

    buffer = io.BytesIO()
    ckpt = torch.load(fake_checkpoint(path.with_suffix(".plain"), []), weights_only=True)
    ckpt["state_dict"]["net.bomb"] = torch.zeros(unpacked_mib * 2**18)
    torch.save(ckpt, buffer)
    path.with_suffix(".plain").unlink()
    src = zipfile.ZipFile(io.BytesIO(buffer.getvalue()))
    with zipfile.ZipFile(path, "w") as out:
        for info in src.infolist():
            out.writestr(info, src.read(info.filename), compress_type=zipfile.ZIP_DEFLATED, compresslevel=9)
    return path


def inflated_config_checkpoint(path: Path, **model) -> Path:
    """A real (small) checkpoint whose saved config asks for another network, e.g. width=100:
    ~2.7 billion parameters if built."""
    fake_checkpoint(path, [])
    ckpt = torch.load(path, weights_only=True)
    ckpt["hyper_parameters"]["run_config"]["model"].update(model)
    torch.save(ckpt, path)
    return path
