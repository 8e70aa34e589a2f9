"""Step 2 of the workflow: the course's linear regression model, as a LightningModule."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from litplate.models.regression import RegressionModel


class LinearRegression(RegressionModel):
    """y = weights * x + bias, starting from random values and learning the ideal ones.

    `common`: loss, optimizer, scheduler, `init_from` and `freeze`, see `RegressionModel`.
    """

    def __init__(self, **common: Any) -> None:
        super().__init__(**common)
        # 1. Start with random values (weights and bias); the order reproduces the course's numbers.
        self.weights = nn.Parameter(torch.randn(1, dtype=torch.float), requires_grad=True)
        self.bias = nn.Parameter(torch.randn(1, dtype=torch.float), requires_grad=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.weights * x + self.bias

    def on_train_epoch_end(self) -> None:
        # The learned values, to watch them approach the ideal ones in TensorBoard.
        self.log_dict({"weight": self.weights[0].detach(), "bias": self.bias[0].detach()})
