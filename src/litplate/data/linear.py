"""Step 1 of the workflow: make the straight-line data of the course, y = weight * X + bias.

`target="sine"` bends the line into weight * sin(2πX) + bias, a curve a straight line cannot fit:
the data of the MLP example.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import lightning as L
import torch
from torch.utils.data import DataLoader, Sampler, TensorDataset

SPLITS = ("train", "val", "test")
PREDICT_SPLITS = (*SPLITS, "all")
TARGETS = ("line", "sine")


class LinearDataModule(L.LightningDataModule):
    """Known parameters, so we can check that training recovers them.

    X = arange(start, end, step) as a column, y = weight * X + bias (`target="line"`) or
    weight * sin(2πX) + bias (`target="sine"`), + optional Gaussian noise drawn from its own seed,
    so it never disturbs the global RNG the model is initialised from.
    The split is sequential like the course: the first `train_fraction` of the points train, the next
    `val_fraction` validate and the last `test_fraction` test. With `val_fraction=0` the test points
    are also the validation points, as the course evaluates on the test set every epoch. An integer
    `split_seed` draws a random split instead (test points among the training ones, e.g. for sine).
    Shuffled batches come from a generator of their own seeded with `shuffle_seed` (None: from the
    global RNG), so a run's shuffles depend on that seed alone.
    """

    def __init__(
        self,
        start: float = 0.0,
        end: float = 1.0,
        step: float = 0.02,
        weight: float = 0.7,
        bias: float = 0.3,
        noise_std: float = 0.0,
        noise_seed: int = 0,
        train_fraction: float = 0.8,
        val_fraction: float = 0.0,
        test_fraction: float = 0.2,
        batch_size: int | None = None,
        shuffle: bool = False,
        predict_split: str = "test",
        target: str = "line",
        split_seed: int | None = None,
        shuffle_seed: int | None = None,
    ) -> None:
        super().__init__()
        if step <= 0:
            raise ValueError(f"step must be > 0, got step={step}")
        if end <= start:
            raise ValueError(f"end must be greater than start, got start={start}, end={end}")
        if noise_std < 0:
            raise ValueError(f"noise_std must be >= 0, got noise_std={noise_std}")
        fractions = {
            "train_fraction": train_fraction,
            "val_fraction": val_fraction,
            "test_fraction": test_fraction,
        }
        for name, value in fractions.items():
            if not 0 <= value <= 1:
                raise ValueError(f"{name} must be between 0 and 1, got {name}={value}")
        if train_fraction == 0 or test_fraction == 0:
            zero = "train_fraction" if train_fraction == 0 else "test_fraction"
            raise ValueError(f"{zero} must be > 0, got {zero}=0")
        if sum(fractions.values()) > 1 + 1e-9:
            raise ValueError(
                "train_fraction + val_fraction + test_fraction must be <= 1, got "
                f"{train_fraction} + {val_fraction} + {test_fraction} = {sum(fractions.values())}"
            )
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size must be >= 1 or null (full batch), got {batch_size}")
        if predict_split not in PREDICT_SPLITS:
            raise ValueError(f"predict_split must be one of {PREDICT_SPLITS}, got {predict_split!r}")
        if target not in TARGETS:
            raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
        self.save_hyperparameters()

        self.X = torch.arange(start, end, step).unsqueeze(dim=1)
        if target == "line":
            self.y = weight * self.X + bias
        else:
            self.y = weight * torch.sin(2 * math.pi * self.X) + bias
        if noise_std > 0:
            generator = torch.Generator().manual_seed(noise_seed)
            self.y = self.y + noise_std * torch.randn(self.y.shape, generator=generator)

        n = len(self.X)
        # The epsilon keeps e.g. 0.29 * 100 = 28.999999999999996 from losing a point.
        n_train, n_val, n_test = (int(f * n + 1e-9) for f in fractions.values())
        for name, count, fraction in (
            ("train_fraction", n_train, train_fraction),
            ("val_fraction", n_val, val_fraction),
            ("test_fraction", n_test, test_fraction),
        ):
            # R² and the loss need at least two points in every split that is used.
            if fraction > 0 and count < 2:
                raise ValueError(
                    f"{name}={fraction} of {n} points gives {count} point(s); a split needs at "
                    "least 2: widen start/end, shrink step or raise the fraction"
                )
        n_test = min(n_test, n - n_train - n_val)
        order = torch.arange(n)
        if split_seed is not None:
            order = torch.randperm(n, generator=torch.Generator().manual_seed(split_seed))

        def points(first: int, last: int) -> torch.Tensor:
            return order[first:last].sort().values  # in order of X, for plots and CSVs

        self.splits = {
            "train": points(0, n_train),
            "val": points(n_train, n_train + n_val) if n_val else points(n - n_test, n),
            "test": points(n - n_test, n),
            "all": torch.arange(n),
        }
        self.shuffle_generator = None
        if shuffle_seed is not None:
            self.shuffle_generator = torch.Generator().manual_seed(shuffle_seed)

    def split(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """The (X, y) tensors of a split: train, val, test or all."""
        part = self.splits[name]
        return self.X[part], self.y[part]

    def _loader(self, name: str, shuffle: bool = False) -> DataLoader:
        X, y = self.split(name)
        batch_size = self.hparams.batch_size or len(X)
        sampler = EpochShuffle(len(X), self.shuffle_generator) if shuffle else None
        return DataLoader(TensorDataset(X, y), batch_size=batch_size, sampler=sampler)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=self.hparams.shuffle)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")

    def predict_dataloader(self) -> DataLoader:
        return self._loader(self.hparams.predict_split)


class EpochShuffle(Sampler[int]):
    """A new order of the `n` points each epoch, one permutation drawn from `generator` (None: the
    global RNG) as the epoch starts.

    Not torch's RandomSampler: that one draws another permutation when a loop runs it to the end,
    which a plain `for` loop does and Lightning's loop does not, so the two would see different
    batches from the second epoch on. The one generator lives as long as the data module, so each
    epoch continues its stream.
    """

    def __init__(self, n: int, generator: torch.Generator | None = None) -> None:
        self.n = n
        self.generator = generator

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[int]:
        return iter(torch.randperm(self.n, generator=self.generator).tolist())
