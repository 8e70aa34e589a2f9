"""TensorDataModule (the base of every data module): splits, batches, shuffles that resume
exactly, and errors that name the argument."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from litplate.data.tensors import BatchIndexSampler
from litplate.run.validation import ConfigError
from litplate.train import train
from tests.helpers.data import Ramp


def test_sequential_split_validates_on_the_test_points():
    dm = Ramp()
    (train_X, _), (val_X, _), (test_X, _) = (dm.split(s) for s in ("train", "val", "test"))
    assert (len(train_X), len(val_X), len(test_X)) == (40, 10, 10)
    assert torch.equal(train_X, dm.X[:40]) and torch.equal(test_X, dm.X[40:])
    assert torch.equal(val_X, test_X)


def test_separate_val_split():
    dm = Ramp(train_fraction=0.6, val_fraction=0.2, test_fraction=0.2)
    sizes = [len(dm.split(s)[0]) for s in ("train", "val", "test")]
    assert sizes == [30, 10, 10]
    assert torch.equal(dm.split("val")[0], dm.X[30:40])


def test_loaders_default_to_full_batch_and_honour_batch_size():
    assert next(iter(Ramp().train_dataloader()))[0].shape == (40, 1)
    loader = Ramp(batch_size=8).train_dataloader()
    assert [len(x) for x, _ in loader] == [8] * 5


@pytest.mark.parametrize(
    ("kwargs", "culprit"),
    [
        ({"train_fraction": 1.5}, "train_fraction"),
        ({"val_fraction": -0.1}, "val_fraction"),
        ({"test_fraction": 0}, "test_fraction"),
        (
            {"train_fraction": 0.9, "test_fraction": 0.2},
            "train_fraction + val_fraction + test_fraction",
        ),
        ({"rows": 4}, "test_fraction"),  # 0.2 of 4 rows: none to test on
        ({"val_fraction": 0.01, "train_fraction": 0.7}, "val_fraction"),
        ({"batch_size": 0}, "batch_size"),
        ({"num_workers": -1}, "num_workers"),
        ({"predict_split": "everything"}, "predict_split"),
    ],
)
def test_invalid_arguments_name_the_culprit(kwargs, culprit):
    with pytest.raises(ValueError, match=f"^{culprit.replace('+', '[+]')}"):
        Ramp(**kwargs)


def test_random_split_is_seeded_disjoint_and_in_order():
    dm = Ramp(split_seed=0)
    train, test = dm.splits["train"], dm.splits["test"]
    assert sorted(torch.cat([train, test]).tolist()) == list(range(50))
    assert torch.equal(train, train.sort().values)
    assert not torch.equal(train, torch.arange(40))  # not the sequential split
    assert torch.equal(dm.split("val")[0], dm.split("test")[0])
    assert torch.equal(Ramp(split_seed=0).splits["test"], test)
    assert not torch.equal(Ramp(split_seed=1).splits["test"], test)


def epochs_of_batches(dm: Ramp, epochs: int = 2, first: int = 0) -> list[list[float]]:
    """The training points, batch by batch, of epochs first, first + 1, ... (as Lightning runs)."""
    loader = dm.train_dataloader()
    out = []
    for epoch in range(first, first + epochs):
        loader.sampler.set_epoch(epoch)
        out.append([x for X, _ in loader for x in X[:, 0].tolist()])
    return out


def test_shuffles_come_from_their_own_seed():
    torch.manual_seed(0)
    first = epochs_of_batches(Ramp(batch_size=8, shuffle=True, shuffle_seed=3))
    torch.manual_seed(1)  # the global RNG plays no part
    assert first == epochs_of_batches(Ramp(batch_size=8, shuffle=True, shuffle_seed=3))
    assert first != epochs_of_batches(Ramp(batch_size=8, shuffle=True, shuffle_seed=4))
    assert first[0] != first[1] and sorted(first[0]) == sorted(first[1])


def test_an_epochs_batches_depend_only_on_seed_and_epoch():
    # What exact resume needs: epoch 5 of a fresh data module (a resumed run) sees the batches
    # that epoch 5 of a run that never stopped saw, however often the loader was iterated before.
    straight = epochs_of_batches(Ramp(batch_size=8, shuffle=True), epochs=6)
    resumed = epochs_of_batches(Ramp(batch_size=8, shuffle=True), epochs=1, first=5)
    assert resumed[0] == straight[5]


class SeenBatches(L.Callback):
    """The training points of every batch, by epoch."""

    def __init__(self) -> None:
        self.batches: dict[int, list[list[float]]] = {}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.batches.setdefault(trainer.current_epoch, []).append(batch[0][:, 0].tolist())


def fit_seeing_batches(tiny_parts, tmp_path, max_epochs: int, ckpt_path=None) -> SeenBatches:
    seen = ModelCheckpoint(dirpath=tmp_path, filename="{epoch}", save_top_k=-1)
    spy = SeenBatches()
    trainer = L.Trainer(
        max_epochs=max_epochs, logger=False, enable_progress_bar=False,
        enable_model_summary=False, callbacks=[seen, spy],
    )  # fmt: skip
    # A worker process draws its first batches before Lightning calls the sampler's set_epoch.
    datamodule, model = tiny_parts(
        "++data.batch_size=8", "++data.shuffle=true", "++data.num_workers=1"
    )
    trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path)
    return spy


@pytest.mark.filterwarnings("ignore:.*does not have many workers")
@pytest.mark.filterwarnings("ignore:The dirpath has changed from")  # the resumed fit saves apart
def test_a_fit_resumed_with_worker_processes_sees_the_batches_of_one_never_stopped(
    tmp_path, tiny_parts
):
    straight = fit_seeing_batches(tiny_parts, tmp_path, max_epochs=4).batches
    resumed = fit_seeing_batches(tiny_parts, tmp_path / "b", 4, tmp_path / "epoch=1.ckpt").batches
    assert sorted(resumed) == [2, 3]
    assert resumed[2] == straight[2] and resumed[3] == straight[3]
    assert straight[2] != straight[1]  # reshuffled every epoch


def test_batches_are_gathered_by_index_not_per_sample():
    dm = Ramp(batch_size=16)
    batches = list(dm.train_dataloader())
    assert [len(X) for X, _ in batches] == [16, 16, 8]
    torch.testing.assert_close(torch.cat([X for X, _ in batches]), dm.split("train")[0])
    assert dm.train_dataloader().batch_size is None  # no per-sample fetch and collate


def test_an_epochs_order_is_torchs_permutation_from_seed_plus_epoch():
    # The very permutation runs and checkpoints made before drew: they see the same batches.
    order = BatchIndexSampler(1_000_000, 1024, shuffle=True, seed=3, epoch=2).order()
    assert torch.equal(order, torch.randperm(1_000_000, generator=torch.Generator().manual_seed(5)))


def test_a_drawn_split_is_gathered_per_batch_not_copied():
    dm = Ramp(rows=1000, batch_size=64, shuffle=True, split_seed=0)
    loader = dm.train_dataloader()
    assert loader.dataset.dataset.tensors[0] is dm.X  # the whole data, not a copy of its rows
    positions = torch.cat(list(loader.sampler))
    X, y = (torch.cat(parts) for parts in zip(*loader, strict=True))
    train_X, train_y = dm.split("train")
    assert torch.equal(X, train_X[positions]) and torch.equal(y, train_y[positions])
    assert len(loader.dataset) == len(train_X) == 800


def test_ddp_ranks_share_out_the_single_process_order():
    # Same seed and epoch: rank r of N takes rows r, r + N, ... of the order one process sees.
    single = BatchIndexSampler(16, 4, shuffle=True, seed=3)
    single.set_epoch(5)
    order = torch.cat(list(single))
    for rank in range(2):
        sampler = BatchIndexSampler(16, 4, shuffle=True, seed=3, num_replicas=2, rank=rank)
        sampler.set_epoch(5)
        assert torch.equal(torch.cat(list(sampler)), order[rank::2])


def test_a_bad_data_argument_is_refused_naming_its_key(cfg_factory, tiny_overrides):
    # The data module's own check, its message prefixed with the config key.
    expected = r"data: train_fraction=1\.5: expected a fraction in \(0, 1\]"
    with pytest.raises(ConfigError, match=expected):
        train(cfg_factory(overrides=[*tiny_overrides, "data.train_fraction=1.5"]))
