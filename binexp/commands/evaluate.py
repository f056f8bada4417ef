"""``binexp evaluate <run dir or .ckpt> [--split val|train] [--name NAME] [data overrides]``:
evaluate a trained network on its own data, another dataset or split, without training.

The network is rebuilt from the checkpoint's saved config (:mod:`binexp.runs.checkpoint`: a
weights-only load), the data config is the run's own with the given overrides (``data=<option>``
switches the dataset; the run's ``normalize`` is kept unless ``data.normalize`` is given), and
Lightning's ``Trainer.test`` runs it with torchmetrics (top-1, top-5, loss, per-class accuracy).
The result goes to ``<run dir>/evaluations/<name>.json`` (atomically); the run's training record
(metrics.json, checkpoints, .hydra, events) is only read.

``data=cifar10c`` walks every corruption and severity of CIFAR-10-C and writes one table: the
accuracy per (corruption, severity), the mean corruption accuracy (mCA, over the benchmark's 15
corruptions) and its drop from the clean accuracy, which is measured in the same call on the
run's own validation data (BiBench's robustness track, arXiv:2301.11233)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import lightning.pytorch as L
import torch.nn.functional as F
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy

from binexp.errors import BinexpError

OPTION = "evaluate"


def main(args: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="binexp evaluate", description=__doc__.splitlines()[0])
    parser.add_argument("source", help="a run directory (its checkpoints/last.ckpt) or a .ckpt file")
    parser.add_argument("overrides", nargs="*", help="data=<option> and data.<key>=<value> overrides")
    parser.add_argument("--split", default="val", choices=("val", "train"), help="which split (default val)")
    parser.add_argument("--name", default=None, help="the evaluation's file name (default: the data's name)")
    parser.add_argument("--accelerator", default="auto", help="Lightning accelerator (default auto)")
    ns = parser.parse_args(args)
    return evaluate(ns.source, ns.overrides, ns.split, ns.name, ns.accelerator)


def evaluate(source: str, overrides: list[str], split: str = "val", name: str | None = None, accelerator="auto") -> int:
    from binexp.analysis import robustness
    from binexp.lit.restore import build_module
    from binexp.runs import checkpoint
    from binexp.runs.layout import CHECKPOINT_DIR
    from binexp.safeio import atomic_write_text

    path = checkpoint.locate(source, OPTION)
    ckpt = checkpoint.load(path, OPTION)
    config, num_classes = checkpoint.run_config(ckpt, path, OPTION)
    data_cfg = data_config(config, overrides)
    corrupted = data_cfg.kind == "cifar10c"
    if corrupted and split != "val":
        raise BinexpError("evaluate: data=cifar10c has only the corrupted test images; fix: drop --split")
    datamodule = _datamodule(data_cfg, num_classes, path)
    if split == "train" and not hasattr(datamodule, "transform_batch"):
        raise BinexpError(
            "evaluate: --split train is for the in-memory sets (cifar, mnist, synthetic); "
            "fix: point data.root at a folder whose val/ holds the images to evaluate"
        )
    clean_dm = _datamodule(data_config(config, []), num_classes, path) if corrupted else None
    module = build_module(ckpt, path, OPTION)
    run_dir = path.parent.parent if path.parent.name == CHECKPOINT_DIR else path.parent
    name = name or (data_cfg.name if split == "val" else f"{data_cfg.name}_{split}")
    if not name.replace("-", "").replace("_", "").replace(".", "").isalnum() or name.startswith("."):
        raise BinexpError(f"evaluate: --name {name!r} is not a plain file name; fix: use letters, digits, - _ .")
    out = run_dir / "evaluations" / f"{name}.json"
    _check_writable(out.parent)

    tester = Tester(module, num_classes, accelerator)
    record: dict[str, Any] = {
        "checkpoint": str(path),
        "run_dir": str(run_dir),
        "run": config.get("name"),
        "quantizer": config["quantizer"].get("name"),
        "model": config["model"].get("name"),
        "trained_on": (config.get("data") or {}).get("name"),
        "epochs": int(ckpt.get("epoch", -1)) + 1,  # Lightning saves the 0-based index of the last epoch
        "data": _plain(data_cfg),
        "split": split,
    }
    if corrupted:
        record["clean"] = tester.run(clean_dm, "val")
        record["clean_data"] = (config.get("data") or {}).get("name")
        per_pair: dict[str, dict[str, dict]] = {}
        for corruption, severity in datamodule.pairs():
            datamodule.select(corruption, severity)
            per_pair.setdefault(corruption, {})[str(severity)] = tester.run(datamodule, "corrupted")
        record["corruptions"] = per_pair
        record.update(robustness.summary(record["clean"]["acc1"], per_pair))
        table = robustness.format_table(record)
    else:
        record.update(tester.run(datamodule, split))
        table = _format(record)
    out.parent.mkdir(exist_ok=True)
    atomic_write_text(out, json.dumps(record, indent=2) + "\n")
    print(table)
    print(f"wrote {out}")
    return 0


def data_config(config: dict, overrides: list[str]):
    """The run's data config with ``overrides`` (``data=<option>``, ``data.<key>=<value>``),
    validated against its dataset schema; anything else is one line."""
    from omegaconf import OmegaConf

    from binexp.config import to_schema
    from binexp.data.registry import DATASETS, dataset_kinds

    for o in overrides:
        if not (o.startswith("data=") or o.startswith("data.")) or "=" not in o:
            raise BinexpError(
                f"evaluate: {o!r} is not a data override; fix: pass data=<option> and data.<key>=<value> only "
                f"(the network and its quantizer come from the checkpoint)"
            )
    switch = [o for o in overrides if o.startswith("data=")]
    fields = [o for o in overrides if o.startswith("data.")]
    run_data = dict(config.get("data") or {})
    node: dict
    if switch:
        from binexp.preflight import compose

        cfg = compose([switch[-1], *fields])  # an unknown option or key: Hydra's one line
        composed = OmegaConf.to_container(cfg.data, resolve=True)
        assert isinstance(composed, dict)
        node = composed
        given = {o.split("=", 1)[0].removeprefix("data.") for o in fields}
        if "normalize" in run_data and "normalize" in node and "normalize" not in given:
            node["normalize"] = run_data["normalize"]  # the statistics the network was trained with
    else:
        node = run_data
        for o in fields:
            key = o.split("=", 1)[0].removeprefix("data.")
            if key.split(".")[0] not in node:
                raise BinexpError(
                    f"evaluate: data.{key} is not a key of the run's data config ({node.get('name')}); "
                    f"choose from: {', '.join(sorted(node))}"
                )
        merged = OmegaConf.to_container(
            OmegaConf.merge(node, OmegaConf.from_dotlist([o.removeprefix("data.") for o in fields])), resolve=True
        )
        assert isinstance(merged, dict)  # a merge of mappings
        node = merged
    kind = node.get("kind") if isinstance(node, dict) else None
    if kind not in DATASETS:
        raise BinexpError(
            f"evaluate: data.kind={kind!r} is not a dataset kind; choose one of: {', '.join(dataset_kinds())}"
        )
    return to_schema(DATASETS[kind].schema, node, "data")


def _datamodule(data_cfg, num_classes: int, path: Path):
    from binexp.data import build_datamodule

    datamodule = build_datamodule(data_cfg)
    if datamodule.num_classes != num_classes:
        raise BinexpError(
            f"evaluate: {path} was trained on {num_classes} classes, data={data_cfg.name} has "
            f"{datamodule.num_classes}; fix: evaluate on data with the same classes"
        )
    check = getattr(datamodule, "check_release", None) or getattr(datamodule, "check", None)
    if check is not None:  # check_release: an evaluation-only set, whose check() refuses training
        check()
    return datamodule


def _check_writable(folder: Path) -> None:
    import os

    existing = next((p for p in [folder, *folder.parents] if p.exists()), None)
    if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
        raise BinexpError(f"evaluate: {folder} is not a plain folder; fix: move it away")
    if existing is None or not os.access(existing, os.W_OK):
        raise BinexpError(f"evaluate: cannot write {folder}; fix: make the run directory writable")


def _plain(data_cfg) -> dict:
    import dataclasses

    return {k: v for k, v in dataclasses.asdict(data_cfg).items()}


class Tester:
    """``Trainer.test`` of the rebuilt network on one datamodule at a time, with torchmetrics."""

    def __init__(self, module, num_classes: int, accelerator: str) -> None:
        from binexp.console import make_quiet

        make_quiet()
        self.module = EvalModule(module, num_classes)
        self.trainer = L.Trainer(
            accelerator=accelerator,
            devices=1,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
        )

    def run(self, datamodule, split: str) -> dict:
        if split == "train":
            datamodule.setup("test")
            datamodule.val_set = datamodule.train_set  # no augmentation: the loader is the test loader
        self.trainer.test(self.module, datamodule=datamodule, verbose=False)
        return self.module.result()


class EvalModule(L.LightningModule):
    """Top-1, top-5, mean cross-entropy per image and per-class accuracy of ``module``."""

    def __init__(self, module, num_classes: int) -> None:
        super().__init__()
        self.module = module
        self.acc1 = MulticlassAccuracy(num_classes, top_k=1, average="micro")
        self.acc5 = MulticlassAccuracy(num_classes, top_k=min(5, num_classes), average="micro")
        self.per_class = MulticlassAccuracy(num_classes, top_k=1, average=None)
        self.loss = MeanMetric()
        self.images = 0

    def on_test_epoch_start(self) -> None:
        for metric in (self.acc1, self.acc5, self.per_class, self.loss):
            metric.reset()
        self.images = 0

    def test_step(self, batch, batch_idx: int) -> None:
        x, y = batch
        logits = self.module(x)
        self.loss.update(F.cross_entropy(logits, y), weight=len(y))
        self.acc1.update(logits, y)
        self.acc5.update(logits, y)
        self.per_class.update(logits, y)
        self.images += len(y)

    def result(self) -> dict:
        return {
            "acc1": round(float(self.acc1.compute()) * 100, 4),
            "acc5": round(float(self.acc5.compute()) * 100, 4),
            "loss": round(float(self.loss.compute()), 6),
            "images": self.images,
            "per_class_acc1": [round(float(v) * 100, 4) for v in self.per_class.compute()],
        }


def _format(record: dict) -> str:
    what = f"{record['data']['name']} {record['split']}"
    head = f"{record['run']} ({record['quantizer']}, {record['epochs']} epochs) on {what}"
    lines = [
        head,
        f"  top-1 {record['acc1']:.2f} %   top-5 {record['acc5']:.2f} %   loss {record['loss']:.4f}   "
        f"{record['images']} images",
        "  per class top-1 (%): " + " ".join(f"{v:.1f}" for v in record["per_class_acc1"]),
    ]
    return "\n".join(lines)


__all__ = ["EvalModule", "data_config", "evaluate", "main"]
