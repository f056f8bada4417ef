"""Data order and augmentation as functions of (seed, epoch, position), so a resumed run replays
exactly what the uninterrupted run did.

* :class:`EpochSampler` draws epoch ``e``'s order from a generator seeded with
  ``mix(seed, "order", e)`` (a ``DistributedSampler`` subclass, so Lightning neither replaces it
  under DDP nor forgets to call ``set_epoch``); each rank takes its own strided share.
* :class:`ResumableDataLoader` is a ``DataLoader`` with ``state_dict()`` / ``load_state_dict()``:
  Lightning saves the state into every checkpoint (``loops.fit_loop.state_dict.combined_loader``)
  and loads it before a restarted epoch, and the sampler then skips the batches the epoch had
  already trained. The state counts *trained* batches (:meth:`BatchProgress.trained`, called by
  the datamodule for every training batch it transfers), not batches fetched: Lightning fetches
  one batch ahead.
* Augmentation draws from a generator seeded per batch (in-memory sets, tensor decoding) or per
  sample (PIL transforms in loader workers) with ``mix(seed, "augment", epoch, position)``, so it
  neither depends on how many batches ran before in this process nor on the worker layout.

Nothing here touches the global RNGs."""

from __future__ import annotations

import math
from collections.abc import Sized
from dataclasses import dataclass
from typing import cast

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

_STREAMS = {"order": 1, "augment": 2}


def mix(seed: int, stream: str, *keys: int) -> int:
    """A 63-bit seed from (seed, stream, keys...) via numpy's SeedSequence (well mixed: runs with
    seeds 0 and 1 do not share shifted orders the way ``seed + epoch`` would)."""
    entropy = [int(seed) & 0xFFFFFFFFFFFFFFFF, _STREAMS[stream], *(int(k) for k in keys)]
    return int(np.random.SeedSequence(entropy).generate_state(1, np.uint64)[0] & 0x7FFFFFFFFFFFFFFF)


def default_seed(seed: int | None) -> int:
    """The run seed, or for an unseeded run (``seed: null``) torch's initial seed of this process;
    it is saved in the loader state, so a resume reuses it."""
    return int(seed) if seed is not None else int(torch.initial_seed())


@dataclass
class BatchProgress:
    """Where the training loader stands: the epoch being iterated and how many of its batches
    have been handed to training (the next batch's position in the epoch)."""

    epoch: int = 0
    batches: int = 0

    def trained(self) -> int:
        """Count one training batch; returns its position in the epoch."""
        position = self.batches
        self.batches += 1
        return position


class EpochSampler(DistributedSampler):
    """Epoch ``e``'s order is a permutation drawn from ``mix(seed, "order", e)`` (identity
    without ``shuffle``); rank ``r`` of ``W`` takes positions ``r, r + W, ...`` of it (padded
    by wrapping so every rank has the same count, as ``DistributedSampler`` does).
    :meth:`resume_at` makes the next iteration of that epoch start ``batches`` batches in, and
    sets the epoch at once: Lightning creates a restarted epoch's iterator before it calls
    ``set_epoch``, and a worker-backed loader draws indices at creation.
    ``keyed=True`` yields ``(epoch, index)`` pairs for :class:`SeededSamples`."""

    def __init__(
        self,
        size: int,
        seed: int,
        batch_size: int,
        progress: BatchProgress,
        shuffle: bool = True,
        num_replicas: int = 1,
        rank: int = 0,
        keyed: bool = False,
    ) -> None:
        self.size = int(size)
        self.num_replicas, self.rank = int(num_replicas), int(rank)
        self.shuffle, self.seed, self.keyed = shuffle, int(seed), keyed
        self.batch_size, self.progress = int(batch_size), progress
        self.drop_last = False
        self.epoch = 0
        self.num_samples = math.ceil(self.size / self.num_replicas)
        self.total_size = self.num_samples * self.num_replicas
        self._resume: tuple[int, int] | None = None

    def __len__(self) -> int:
        return self.num_samples

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def resume_at(self, epoch: int, batches: int) -> None:
        self.epoch = int(epoch)
        self._resume = (int(epoch), int(batches))

    def order(self, epoch: int) -> list[int]:
        """This rank's indices for ``epoch``, in order."""
        if self.shuffle:
            g = torch.Generator().manual_seed(mix(self.seed, "order", epoch))
            indices = torch.randperm(self.size, generator=g).tolist()
        else:
            indices = list(range(self.size))
        if self.total_size > len(indices):
            indices += (indices * math.ceil(self.total_size / len(indices)))[: self.total_size - len(indices)]
        return indices[self.rank : self.total_size : self.num_replicas]

    def __iter__(self):
        skip = 0
        if self._resume is not None and self._resume[0] == self.epoch:
            skip = self._resume[1]
        self._resume = None
        self.progress.epoch, self.progress.batches = self.epoch, skip
        indices = self.order(self.epoch)[skip * self.batch_size :]
        if self.keyed:
            return iter([(self.epoch, i) for i in indices])
        return iter(indices)


class ResumableDataLoader(DataLoader):
    """A training ``DataLoader`` over an :class:`EpochSampler` whose state Lightning checkpoints
    (``state_dict`` / ``load_state_dict``); ``progress`` is advanced by the datamodule for every
    batch that reaches training."""

    def __init__(self, dataset: Dataset, *, sampler: EpochSampler, **kwargs) -> None:
        super().__init__(dataset, sampler=sampler, batch_size=sampler.batch_size, **kwargs)
        self.progress = sampler.progress
        self.epoch_sampler = sampler

    def state_dict(self) -> dict:
        return {
            "epoch": self.progress.epoch,
            "batches": self.progress.batches,
            "seed": self.epoch_sampler.seed,
            "batch_size": self.epoch_sampler.batch_size,
        }

    def load_state_dict(self, state: dict) -> None:
        self.epoch_sampler.seed = int(state.get("seed", self.epoch_sampler.seed))
        batches = int(state["batches"])
        if int(state.get("batch_size", self.epoch_sampler.batch_size)) != self.epoch_sampler.batch_size:
            batches = 0  # another batch size: positions do not carry over; the epoch restarts from its start
        self.epoch_sampler.resume_at(int(state["epoch"]), batches)


class SeededSamples(Dataset):
    """Wraps a map-style dataset whose transforms draw from torch's global RNG (torchvision's
    ``RandomResizedCrop``, ``RandomHorizontalFlip``): item ``(epoch, i)`` is ``dataset[i]``
    transformed under a generator state seeded with ``mix(seed, "augment", epoch, i)``, whatever
    worker loads it and whatever ran before."""

    def __init__(self, dataset: Dataset, seed: int) -> None:
        self.dataset, self.seed = dataset, int(seed)

    def __len__(self) -> int:
        return len(cast(Sized, self.dataset))  # map-style datasets with a length (ImageFolder)

    def __getitem__(self, key):
        if not isinstance(key, tuple):
            return self.dataset[key]
        epoch, index = key
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(mix(self.seed, "augment", epoch, index))
            return self.dataset[index]


def augment_generator(seed: int, epoch: int, position: int, device: torch.device) -> torch.Generator:
    """The generator for the augmentation of batch ``position`` of ``epoch`` on ``device``."""
    return torch.Generator(device=device).manual_seed(mix(seed, "augment", epoch, position))


def train_loader(
    dataset: Dataset, batch_size: int, seed: int, trainer=None, keyed: bool = False, **kwargs
) -> ResumableDataLoader:
    """The training loader of a binexp datamodule: (seed, epoch)-ordered, resumable mid-epoch.
    ``batch_size`` is per rank."""
    world, rank = (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)
    sampler = EpochSampler(
        len(cast(Sized, dataset)),
        seed,
        batch_size,
        BatchProgress(),
        shuffle=True,
        num_replicas=world,
        rank=rank,
        keyed=keyed,
    )
    return ResumableDataLoader(dataset, sampler=sampler, **kwargs)
