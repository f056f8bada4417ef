"""Data order and augmentation as functions of (seed, epoch, position); the resumable loader;
which checkpoint resume= picks; the idempotent epoch start of RBNN."""

from __future__ import annotations

import pytest
import torch

from binexp.data.seeding import EpochSampler, SeededSamples, augment_generator, mix, train_loader
from binexp.data.synthetic import SyntheticDataModule
from binexp.errors import BinexpError
from binexp.runs.resume import already_complete, resume_checkpoint


class Images(torch.utils.data.Dataset):
    def __len__(self):
        return 10

    def __getitem__(self, i):
        return torch.tensor(i)


def epoch_batches(loader, epoch):
    loader.epoch_sampler.set_epoch(epoch)
    return [b.tolist() for b in loader]


def test_order_derives_from_seed_and_epoch_only():
    a = train_loader(Images(), 3, seed=7)
    b = train_loader(Images(), 3, seed=7)
    e0, e1 = epoch_batches(a, 0), epoch_batches(a, 1)
    assert sorted(i for b in e0 for i in b) == list(range(10)) and len(e0) == 4
    assert e0 != e1
    assert epoch_batches(b, 1) == e1 and epoch_batches(b, 0) == e0  # any epoch, in any order of asking
    assert epoch_batches(train_loader(Images(), 3, seed=8), 0) != e0
    assert mix(0, "order", 1) != mix(1, "order", 0)  # not seed + epoch


def test_ranks_split_each_epoch_between_them():
    from binexp.data.seeding import BatchProgress

    shards = [EpochSampler(10, 3, 2, BatchProgress(), num_replicas=3, rank=r) for r in range(3)]
    for s in shards:
        s.set_epoch(4)
    got = [list(s) for s in shards]
    assert all(len(g) == 4 for g in got)  # 10 padded to 12
    assert {i for g in got for i in g} == set(range(10))


def test_loader_state_resumes_after_the_batches_trained():
    a = train_loader(Images(), 3, seed=1)
    a.epoch_sampler.set_epoch(2)
    full = []
    for i, batch in enumerate(a):
        full.append(batch.tolist())
        a.progress.trained()
        if i == 1:
            state = a.state_dict()
    assert state == {"epoch": 2, "batches": 2, "seed": 1, "batch_size": 3}
    b = train_loader(Images(), 3, seed=99)  # an unseeded resume: the seed comes from the state
    b.load_state_dict(state)
    assert b.epoch_sampler.epoch == 2  # set before Lightning creates the iterator
    assert [x.tolist() for x in b] == full[2:]
    assert b.progress.epoch == 2 and b.progress.batches == 2  # the next batch's position
    b.epoch_sampler.set_epoch(3)
    assert len([x for x in b]) == 4  # the skip applies to the resumed epoch only
    c = train_loader(Images(), 5, seed=1)
    c.load_state_dict(state)  # another batch size: the epoch starts over
    assert len([x for x in c]) == 2


def test_augmentation_depends_on_seed_epoch_and_position_only():
    dm = SyntheticDataModule(train_size=8, val_size=4, image_size=8, batch_size=4)
    dm.setup()
    images = dm.train_set.images[:4]

    def crop(seed, epoch, pos):
        return dm.transform_batch((images, None), True, augment_generator(seed, epoch, pos, images.device))[0]

    assert torch.equal(crop(0, 1, 2), crop(0, 1, 2))
    assert not torch.equal(crop(0, 1, 2), crop(0, 1, 3)) and not torch.equal(crop(0, 1, 2), crop(0, 2, 2))


def test_seeded_samples_draw_the_same_transform_for_the_same_key():
    class Noisy(torch.utils.data.Dataset):
        def __len__(self):
            return 4

        def __getitem__(self, i):
            return torch.rand(3)

    ds = SeededSamples(Noisy(), seed=5)
    torch.manual_seed(0)
    x = ds[(1, 2)]
    torch.rand(10)  # whatever ran before
    assert torch.equal(ds[(1, 2)], x) and not torch.equal(ds[(1, 3)], x) and not torch.equal(ds[(2, 2)], x)


def _ckpt(path, step, epoch):
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": {}, "epoch": epoch, "global_step": step}, path)


def test_resume_picks_last_then_the_newest_readable_checkpoint(tmp_path):
    with pytest.raises(
        BinexpError, match=r"nothing to resume: .*last.ckpt does not exist.*hydra.run.dir=<a new folder>"
    ):
        resume_checkpoint(tmp_path)
    ck = tmp_path / "checkpoints"
    _ckpt(ck / "epoch000-acc10.00.ckpt", 4, 0)
    _ckpt(ck / "epoch001-acc20.00.ckpt", 8, 1)
    path, note = resume_checkpoint(tmp_path)
    assert path.name == "epoch001-acc20.00.ckpt" and "does not exist" in note
    (ck / "last.ckpt").write_bytes(b"PK\x03\x04 half written")
    path, note = resume_checkpoint(tmp_path)
    assert path.name == "epoch001-acc20.00.ckpt" and "unreadable" in note
    _ckpt(ck / "last.ckpt", 10, 2)
    assert resume_checkpoint(tmp_path) == (ck / "last.ckpt", None)
    assert already_complete({"status": "completed", "epochs": 3}, 3)
    assert not already_complete({"status": "completed", "epochs": 3}, 4)
    assert not already_complete({"status": "interrupted", "epochs": 3}, 3)


def test_rbnn_rotation_runs_once_per_epoch_and_not_on_reentry():
    from tests.unit.test_rbnn import gaussian_layer

    layer = gaussian_layer(8, 8, 3)
    layer.epoch_start(0, 10)
    r1 = layer.R1.clone()
    layer.epoch_start(0, 10)  # the same epoch again: no second update
    assert layer.rotation_updates.item() == 1 and torch.equal(layer.R1, r1)
    other = gaussian_layer(8, 8, 3)
    other.load_state_dict(layer.state_dict())
    other.weight_sign.t.fill_(123.0)
    other.resume_epoch(0, 10)  # a mid-epoch resume: schedule values back, rotation not redone
    assert other.rotation_updates.item() == 1 and torch.equal(other.R1, r1)
    assert other.weight_sign.t.item() == pytest.approx(layer.weight_sign.t.item())
    other.epoch_start(1, 10)
    assert other.rotation_updates.item() == 2
