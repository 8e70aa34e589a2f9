"""In-memory data (X, y): splits by fraction, whole batches gathered by index (docs/data.md)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import lightning as L
import torch
from torch.utils.data import (
    DataLoader,
    DistributedSampler,
    SequentialSampler,
    Subset,
    TensorDataset,
)

from litplate.run.checkpoint import SafeLoading

SPLITS = ("train", "val", "test", "all")
FRACTIONS = ("train_fraction", "val_fraction", "test_fraction")
# An argument's name: (what a valid value passes, what the message asks for).
Rules = dict[str, tuple[Callable[[Any], bool], str]]
RULES: Rules = {
    "train_fraction": (lambda v: 0 < v <= 1, "a fraction in (0, 1]"),
    "val_fraction": (lambda v: 0 <= v <= 1, "a fraction in [0, 1] (0: validate on the test rows)"),
    "test_fraction": (lambda v: 0 < v <= 1, "a fraction in (0, 1]"),
    "batch_size": (lambda v: v is None or v >= 1, "an integer >= 1, or null (full batch)"),
    "num_workers": (lambda v: v >= 0, "an integer >= 0"),
    "predict_split": (lambda v: v in SPLITS, f"one of {', '.join(SPLITS)}"),
}


def check_arguments(rules: Rules, arguments: dict[str, Any]) -> None:
    """A data module's check of its arguments (those in `rules`): a ValueError naming the first
    that breaks its rule, `name=value: expected ...` (the builder prefixes the key, `data: `)."""
    for name, (valid, expected) in rules.items():
        try:
            ok = name not in arguments or valid(arguments[name])
        except TypeError:  # e.g. text where a number belongs
            ok = False
        if not ok:
            raise ValueError(f"{name}={arguments[name]!r}: expected {expected}")


class BatchIndexSampler(DistributedSampler, SequentialSampler):
    """Index tensors, one per batch, in the order of (seed, epoch); under DDP this rank's share.
    A DistributedSampler, so Lightning does not deal whole batches to the ranks, and a
    SequentialSampler, so `overfit_batches` keeps it (it swaps others for a per-sample one)."""

    def __init__(
        self,
        size: int,
        batch_size: int,
        shuffle: bool = False,
        seed: int = 0,
        epoch: int = 0,
        device: torch.device | str = "cpu",
        num_replicas: int = 1,
        rank: int = 0,
        pad: bool = True,
    ) -> None:
        if not pad and size < num_replicas:
            raise ValueError(
                f"{size} rows to evaluate over {num_replicas} processes: every process needs "
                "at least one; use fewer devices or a larger split"
            )
        super().__init__(range(size), num_replicas, rank, shuffle=shuffle, seed=seed)
        self.size, self.batch_size, self.epoch, self.pad = size, batch_size, epoch, pad
        self.device = torch.device(device)

    def order(self) -> torch.Tensor:
        """This rank's rows for the epoch, on `device`."""
        if self.shuffle:
            # Drawn on the CPU whatever the device, so every device sees the same order.
            generator = torch.Generator().manual_seed(self.seed + self.epoch)
            order = torch.randperm(self.size, generator=generator)
        else:
            order = torch.arange(self.size)
        if self.pad and self.total_size > self.size:
            # Equal shares: the first rows again, as torch's DistributedSampler pads.
            order = order.repeat(-(-self.total_size // self.size))[: self.total_size]
        return order[self.rank :: self.num_replicas].to(self.device)

    def __iter__(self) -> Iterator[torch.Tensor]:
        yield from self.order().split(self.batch_size)

    def __len__(self) -> int:
        end = self.total_size if self.pad else self.size
        return -(-len(range(self.rank, end, self.num_replicas)) // self.batch_size)


def gpu_device(trainer: L.Trainer) -> torch.device | None:
    """The trainer's device if it is a GPU (CUDA, or Apple's MPS), else None."""
    device = trainer.strategy.root_device
    return device if device.type in ("cuda", "mps") else None


class TensorDataModule(SafeLoading, L.LightningDataModule):
    """Base for data held in memory as (X, y): subclasses make the tensors and call `set_data`."""

    def __init__(
        self,
        train_fraction: float = 0.8,
        val_fraction: float = 0.0,
        test_fraction: float = 0.2,
        batch_size: int | None = None,
        shuffle: bool = False,
        shuffle_seed: int | None = 0,
        predict_split: str = "test",
        split_seed: int | None = None,
        num_workers: int = 0,
        on_device: bool = True,
    ) -> None:
        super().__init__()
        check_arguments(RULES, locals())
        fractions = (train_fraction, val_fraction, test_fraction)
        if sum(fractions) > 1 + 1e-9:
            raise ValueError(
                f"train_fraction + val_fraction + test_fraction = {' + '.join(map(str, fractions))}"
                f" = {sum(fractions):g}: expected at most 1"
            )
        self.fractions = dict(zip(FRACTIONS, fractions, strict=True))
        self.batch_size, self.shuffle = batch_size, shuffle
        self.shuffle_seed = shuffle_seed or 0
        self.predict_split, self.split_seed = predict_split, split_seed
        self.num_workers, self.on_device = num_workers, on_device
        self._host: tuple[torch.Tensor, torch.Tensor] | None = None  # (X, y) while on a device
        self.resume_epoch = 0  # the first epoch of a fit resumed from a checkpoint

    def set_data(self, X: torch.Tensor, y: torch.Tensor) -> None:
        """Keep (X, y) and cut the splits; too small a split is a ValueError naming its fraction."""
        self.X, self.y = X, y
        self.raw_X, self.raw_y = X, y  # the data's own units, should a subclass transform X and y
        n = len(X)
        # The epsilon keeps e.g. 0.29 * 100 = 28.999999999999996 from losing a row.
        counts = [int(fraction * n + 1e-9) for fraction in self.fractions.values()]
        for (name, fraction), count in zip(self.fractions.items(), counts, strict=True):
            # R² and the loss need at least two rows in every split that is used.
            if fraction > 0 and count < 2:
                raise ValueError(
                    f"{name}={fraction} of {n} rows gives {count}; a split needs at least 2"
                )
        n_train, n_val, n_test = counts
        drawn = None
        if self.split_seed is not None:
            drawn = torch.randperm(n, generator=torch.Generator().manual_seed(self.split_seed))

        def rows(first: int, last: int) -> slice | torch.Tensor:
            if drawn is None:
                return slice(first, last)  # a view of X and y
            # The drawn rows in row order: a mask's nonzero positions, faster than a sort.
            chosen = torch.zeros(n, dtype=torch.bool).index_fill_(0, drawn[first:last], True)
            return chosen.nonzero().squeeze(1)

        self.splits = {
            "train": rows(0, n_train),
            "val": rows(n_train, n_train + n_val) if n_val else rows(n - n_test, n),
            "test": rows(n - n_test, n),
            "all": slice(0, n),
        }

    @property
    def n_features(self) -> int:
        """Inputs per example: the models' input size (`model.n_features: null` takes it)."""
        return self.X.shape[1]

    @property
    def feature_names(self) -> list[str]:
        """Column names for the inputs in predictions.csv."""
        return ["input"] if self.n_features == 1 else [f"x{i}" for i in range(self.n_features)]

    def split(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """The (X, y) tensors of a split: train, val, test or all."""
        part = self.splits[name]
        return self.X[part], self.y[part]

    def raw_inputs(self, name: str) -> torch.Tensor:
        """A split's inputs in the data's own units (before any transform), for outputs."""
        return self.raw_X[self.splits[name]]

    def raw_targets(self, name: str) -> torch.Tensor:
        """A split's targets in the data's own units."""
        return self.raw_y[self.splits[name]]

    def to_data_units(self, predictions: torch.Tensor) -> torch.Tensor:
        """The model's predictions in the targets' own units."""
        return predictions

    def setup(self, stage: str) -> None:
        """Before each stage: the data onto the trainer's GPU, once (worker processes cannot)."""
        device = gpu_device(self.trainer) if self.trainer is not None else None
        if device is not None and self.on_device and self.num_workers == 0:
            self.place(device)

    def teardown(self, stage: str) -> None:
        """After each stage: back to the host tensors, as the model goes."""
        self.place(None)

    def place(self, device: torch.device | str | None) -> None:
        """X and y copied to `device` from the host tensors; None: the host tensors again."""
        if self._host is None:
            self._host = (self.X, self.y)
        X, y = self._host
        if device is None:
            self.X, self.y, self._host = X, y, None
        else:
            self.X, self.y = X.to(device), y.to(device)

    def _loader(self, name: str, shuffle: bool = False) -> DataLoader:
        trainer = self.trainer  # set by Lightning when the data module is attached
        epoch, replicas, rank = 0, 1, 0
        if trainer is not None:
            # Lightning's overfit_batches: the same first batches every epoch, unshuffled.
            shuffle = shuffle and not trainer.overfit_batches
            if shuffle:
                # Worker processes draw their first batches before Lightning calls set_epoch, and
                # on a resume current_epoch still reads the epoch before: start at the right one.
                epoch, self.resume_epoch = max(self.resume_epoch, trainer.current_epoch), 0
            replicas, rank = trainer.world_size, trainer.global_rank
        rows = self.splits[name]
        if isinstance(rows, slice):
            dataset = TensorDataset(self.X[rows], self.y[rows])  # views
        else:  # drawn rows, gathered a whole batch at a time on the data's device
            dataset = Subset(TensorDataset(self.X, self.y), rows.to(self.X.device))
        sampler = BatchIndexSampler(
            len(dataset),
            self.batch_size or len(dataset),
            shuffle=shuffle,
            seed=self.shuffle_seed,
            epoch=epoch,
            device=self.X.device,
            num_replicas=replicas,
            rank=rank,
            pad=name == "train",  # equal steps on every rank; evaluation sees each row once
        )
        return DataLoader(
            dataset,
            sampler=sampler,
            batch_size=None,  # each index tensor from the sampler is one whole batch
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            # Its own generator: otherwise every new iterator draws a seed from the global RNG,
            # which dropout also draws from, and a resumed run would see other dropout masks.
            generator=torch.Generator().manual_seed(self.shuffle_seed),
        )

    def state_dict(self) -> dict[str, Any]:
        """Kept in checkpoints, which are written at an epoch's end: the epoch that follows."""
        return {"resume_epoch": self.trainer.current_epoch + 1} if self.trainer else {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.resume_epoch = state_dict.get("resume_epoch", 0)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=self.shuffle)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")

    def predict_dataloader(self) -> DataLoader:
        return self._loader(self.predict_split)
