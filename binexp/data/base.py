"""The base class of every binexp datamodule."""

from __future__ import annotations

import lightning.pytorch as L


class ClassifierData(L.LightningDataModule):
    """What every binexp datamodule has beyond Lightning's hooks: its class count, and the run seed
    every epoch's order and augmentation derive from (set by ``binexp.data.build_datamodule``; None:
    this process's torch seed)."""

    num_classes: int
    run_seed: int | None = None
