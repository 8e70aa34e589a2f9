"""A small TensorDataModule of the tests' own: what a data module's splits, batches and devices do
whatever the data."""

from __future__ import annotations

import torch

from litplate.data import TensorDataModule


class Ramp(TensorDataModule):
    """`rows` rows of x = 0, 1/rows, 2/rows, ... and y = 0.7 x + 0.3 (one feature)."""

    def __init__(self, rows: int = 50, **split_and_batch) -> None:
        super().__init__(**split_and_batch)
        X = torch.arange(rows, dtype=torch.float32).unsqueeze(1) / rows
        self.set_data(X, 0.7 * X + 0.3)
