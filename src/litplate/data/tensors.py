"""In-memory data: splits by fraction, and batches gathered by index tensors.

A DataLoader over a TensorDataset calls __getitem__ once per sample and collates the results:
Python work per sample. Here the sampler yields one tensor of indices per batch and the dataset
gathers the whole batch with one indexing operation. On a GPU the tensors are copied to it once, in
`setup`, and the batches are gathered there: no copy from the host per step.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler, SequentialSampler

from litplate.run.checkpoint import SafeLoading

SPLITS = ("train", "val", "test")
PREDICT_SPLITS = (*SPLITS, "all")


def index_dtype(size: int) -> torch.dtype:
    """int32 indices where they reach every row: half the memory of int64, the same values."""
    return torch.int32 if size < 2**31 else torch.int64


class IndexedTensors(Dataset):
    """Tensors indexed by a whole batch of indices at once.

    With `rows`, the dataset is those rows of the tensors: index i is row rows[i], gathered per
    batch, so a split drawn at random needs no copy of its rows.
    """

    def __init__(self, *tensors: torch.Tensor, rows: torch.Tensor | None = None) -> None:
        self.tensors, self.rows = tensors, rows

    def __len__(self) -> int:
        return len(self.tensors[0]) if self.rows is None else len(self.rows)

    def __getitem__(self, indices: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if self.rows is not None:
            indices = self.rows[indices]
        return tuple(tensor[indices] for tensor in self.tensors)


class BatchIndexSampler(Sampler[torch.Tensor]):
    """Index tensors, one per batch; shuffled by a generator seeded with `seed + epoch`.

    The order of an epoch depends only on (seed, epoch), never on the global RNG or on how many
    epochs this process has run, so a run resumed at epoch e sees the batches it would have seen.
    """

    def __init__(
        self,
        size: int,
        batch_size: int,
        shuffle: bool = False,
        seed: int = 0,
        epoch: int = 0,
        device: torch.device | str = "cpu",
    ) -> None:
        self.size, self.batch_size, self.shuffle, self.seed = size, batch_size, shuffle, seed
        self.epoch, self.device = epoch, torch.device(device)

    def set_epoch(self, epoch: int) -> None:
        """Called at the start of every training epoch (by Lightning, or by a plain loop)."""
        self.epoch = epoch

    def order(self) -> torch.Tensor:
        """The epoch's order of the rows, on `device` (the data's)."""
        dtype = index_dtype(self.size)
        if not self.shuffle:
            return torch.arange(self.size, dtype=dtype, device=self.device)
        # Drawn on the CPU whatever the device, so every device sees the same order.
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return torch.randperm(self.size, generator=generator, dtype=dtype).to(self.device)

    def __iter__(self) -> Iterator[torch.Tensor]:
        yield from self.order().split(self.batch_size)

    def __len__(self) -> int:
        return -(-self.size // self.batch_size)


class InOrderBatchIndexSampler(BatchIndexSampler, SequentialSampler):
    """A BatchIndexSampler in row order that Lightning's `overfit_batches` keeps: it swaps any
    sampler but a SequentialSampler for a per-sample one, which these loaders cannot use."""

    def __init__(self, size: int, batch_size: int, device: torch.device | str = "cpu") -> None:
        super().__init__(size, batch_size, shuffle=False, device=device)


class DistributedBatchIndexSampler(DistributedSampler):
    """Under DDP: the batches of a BatchIndexSampler, drawn from this rank's share of the rows.

    Every rank computes the same epoch order (same seed and epoch) and takes rows rank, rank + N,
    rank + 2N, ... of it, in batches of `rows.batch_size` (a per-device batch size). For training
    (`pad=True`) the order is first padded by repeating its first rows up to a multiple of N, as
    torch's DistributedSampler does, so that every rank runs the same number of steps; for
    evaluation nothing is repeated and every row is evaluated exactly once. It is a
    DistributedSampler, so Lightning does not wrap it in one of its own (which would hand out
    whole batches, not rows, to the ranks: evaluating some twice).
    """

    def __init__(self, rows: BatchIndexSampler, num_replicas: int, rank: int, pad: bool) -> None:
        if not pad and rows.size < num_replicas:
            raise ValueError(
                f"{rows.size} rows to evaluate over {num_replicas} processes: every process needs "
                "at least one; use fewer devices or a larger split"
            )
        super().__init__(range(rows.size), num_replicas=num_replicas, rank=rank, shuffle=False)
        self.rows, self.pad = rows, pad

    def set_epoch(self, epoch: int) -> None:
        super().set_epoch(epoch)
        self.rows.set_epoch(epoch)

    def _shard(self) -> torch.Tensor:
        order = self.rows.order()
        if self.pad and len(order) % self.num_replicas:
            extra = self.num_replicas - len(order) % self.num_replicas
            order = torch.cat([order, order.repeat(extra // len(order) + 1)[:extra]])
        return order[self.rank :: self.num_replicas]

    def __iter__(self) -> Iterator[torch.Tensor]:
        yield from self._shard().split(self.rows.batch_size)

    def __len__(self) -> int:
        return -(-len(self._shard()) // self.rows.batch_size)


def gpu_device(trainer: L.Trainer) -> torch.device | None:
    """The trainer's device if it is a GPU (CUDA, or Apple's MPS), else None."""
    device = trainer.strategy.root_device
    return device if device.type in ("cuda", "mps") else None


class TensorDataModule(SafeLoading, L.LightningDataModule):
    """Base for data held in memory as (X, y): subclasses make the tensors and call `set_data`.

    The split is sequential: the first `train_fraction` of the rows train, the next `val_fraction`
    validate and the last `test_fraction` test. With `val_fraction=0` the test rows are also the
    validation rows, as the course evaluates on the test set every epoch. An integer `split_seed`
    draws a random split instead (each split kept in row order, for plots and CSVs). Training
    batches are reshuffled every epoch when `shuffle` is set, from `shuffle_seed + epoch`.

    With `on_device` (the default) and a Trainer on a GPU, `setup` copies X and y to the GPU once
    and the batches are gathered there; `teardown` goes back to the host tensors (Lightning moves
    the model back to the CPU at the end of a fit, test or predict too). Worker processes
    (`num_workers > 0`) cannot share GPU tensors, so their data stays on the host.
    """

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
        self.fractions = {
            "train_fraction": train_fraction,
            "val_fraction": val_fraction,
            "test_fraction": test_fraction,
        }
        for name, value in self.fractions.items():
            if not 0 <= value <= 1:
                raise ValueError(f"{name} must be between 0 and 1, got {name}={value}")
        for name in ("train_fraction", "test_fraction"):
            if self.fractions[name] == 0:
                raise ValueError(f"{name} must be > 0, got {name}=0")
        if sum(self.fractions.values()) > 1 + 1e-9:
            raise ValueError(
                "train_fraction + val_fraction + test_fraction must be <= 1, got "
                f"{train_fraction} + {val_fraction} + {test_fraction} = "
                f"{sum(self.fractions.values())}"
            )
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size must be >= 1 or null (full batch), got {batch_size}")
        if num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got num_workers={num_workers}")
        if predict_split not in PREDICT_SPLITS:
            raise ValueError(
                f"predict_split must be one of {PREDICT_SPLITS}, got {predict_split!r}"
            )
        self.batch_size, self.shuffle = batch_size, shuffle
        self.shuffle_seed = shuffle_seed or 0
        self.predict_split = predict_split
        self.split_seed = split_seed
        self.num_workers = num_workers
        self.on_device = on_device
        self._host: tuple[torch.Tensor, torch.Tensor] | None = None  # (X, y) while on a device
        self.resume_epoch = 0  # the first epoch of a fit resumed from a checkpoint

    def set_data(self, X: torch.Tensor, y: torch.Tensor, what: str = "points") -> None:
        """Keep (X, y) and cut the splits; too small a split is a ValueError naming its fraction."""
        self.X, self.y = X, y
        n = len(X)
        # The epsilon keeps e.g. 0.29 * 100 = 28.999999999999996 from losing a row.
        n_train, n_val, n_test = (int(f * n + 1e-9) for f in self.fractions.values())
        for (name, fraction), count in zip(
            self.fractions.items(), (n_train, n_val, n_test), strict=True
        ):
            # R² and the loss need at least two rows in every split that is used.
            if fraction > 0 and count < 2:
                raise ValueError(
                    f"{name}={fraction} of {n} {what} gives {count}; a split needs at least 2"
                )
        if self.split_seed is None:
            # Slices: the splits are views of X and y, no index tensor or copy of the data.
            def rows(first: int, last: int) -> slice | torch.Tensor:
                return slice(first, last)
        else:
            order = torch.randperm(n, generator=torch.Generator().manual_seed(self.split_seed))

            def rows(first: int, last: int) -> slice | torch.Tensor:
                # The drawn rows in row order: a mask's nonzero positions, without a sort's copies.
                chosen = torch.zeros(n, dtype=torch.bool)
                chosen[order[first:last]] = True
                return chosen.nonzero().squeeze(1).to(index_dtype(n))

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
        """A split's inputs in the data's own units, for predictions.csv and plots.

        The same as `split(name)[0]` here; a data module that transforms its data for the model
        (the CSV module's standardization) gives them as they were before the transform.
        """
        return self.split(name)[0]

    def raw_targets(self, name: str) -> torch.Tensor:
        """A split's targets in the data's own units (see `raw_inputs`)."""
        return self.split(name)[1]

    def to_data_units(self, predictions: torch.Tensor) -> torch.Tensor:
        """The model's predictions in the targets' own units (see `raw_inputs`)."""
        return predictions

    def setup(self, stage: str) -> None:
        """Called by Lightning before each fit, validate, test or predict: pin the data on a GPU."""
        device = gpu_device(self.trainer) if self.trainer is not None else None
        if device is not None and self.on_device and self.num_workers == 0:
            self.place(device)

    def teardown(self, stage: str) -> None:
        """Called by Lightning after each stage: back to the host tensors, as the model goes."""
        self.place(None)

    def place(self, device: torch.device | str | None) -> None:
        """Hold X and y on `device` (one copy), or on the host again with None (no copy: the host
        tensors are kept). The splits' rows are unchanged; batches are gathered on `device`."""
        if device is None:
            if self._host is not None:
                self.X, self.y = self._host
                self._host = None
            return
        if self._host is None:
            self._host = (self.X, self.y)
        X, y = self._host
        self.X, self.y = X.to(device), y.to(device)

    def _loader(self, name: str, shuffle: bool = False) -> DataLoader:
        rows = self.splits[name]
        if isinstance(rows, slice):  # a view of X and y
            dataset = IndexedTensors(self.X[rows], self.y[rows])
        else:  # drawn rows, gathered per batch (on the data's device)
            dataset = IndexedTensors(self.X, self.y, rows=rows.to(self.X.device))
        trainer = self.trainer  # set by Lightning when the data module is attached
        epoch = 0
        if shuffle and trainer is not None:
            # Worker processes draw their first batches before Lightning calls set_epoch, and on
            # a resume current_epoch still reads the epoch before: start at the right one here.
            epoch, self.resume_epoch = max(self.resume_epoch, trainer.current_epoch), 0
        size = len(dataset)
        if trainer is not None and trainer.overfit_batches > 0:
            # The same first batches every epoch, unshuffled, as Lightning makes them.
            sampler = InOrderBatchIndexSampler(size, self.batch_size or size, self.X.device)
        else:
            sampler = BatchIndexSampler(
                size, self.batch_size or size, shuffle, self.shuffle_seed, epoch, self.X.device
            )
        if trainer is not None and trainer.world_size > 1:  # DDP: this rank's share of the rows
            sampler = DistributedBatchIndexSampler(
                sampler, trainer.world_size, trainer.global_rank, pad=name == "train"
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
