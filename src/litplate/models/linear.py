"""Step 2 of the workflow: the course's linear regression model, as a LightningModule."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from litplate.models.regression import RegressionModel


class LinearRegression(RegressionModel):
    """y = weights * x + bias, starting from random values and learning the ideal ones.

    Loss, optimizer, scheduler, `init_from` and `freeze`: see `RegressionModel`.
    """

    def __init__(
        self,
        loss: dict[str, Any] | None = None,
        optimizer: dict[str, Any] | None = None,
        scheduler: dict[str, Any] | None = None,
        init_from: str | None = None,
        freeze: Sequence[str] = (),
    ) -> None:
        super().__init__(loss, optimizer, scheduler, init_from, freeze)
        # 1. Start with random values (weights and bias); the order reproduces the course's numbers.
        self.weights = nn.Parameter(torch.randn(1, dtype=torch.float), requires_grad=True)
        self.bias = nn.Parameter(torch.randn(1, dtype=torch.float), requires_grad=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.weights * x + self.bias

    def on_train_epoch_end(self) -> None:
        # The learned values, to watch them approach the ideal ones in TensorBoard.
        self.log_dict({"weight": self.weights[0].detach(), "bias": self.bias[0].detach()})
