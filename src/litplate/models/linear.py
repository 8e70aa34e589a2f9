"""Step 2 of the workflow: the course's linear regression model, as a LightningModule."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from litplate.models.base import LitModel

if TYPE_CHECKING:
    from litplate.data.standardize import Standardization


class LinearRegression(LitModel):
    """y = weights * x + bias, from random values to the ideal ones; one weight per feature.
    `common`: loss, optimizer, scheduler, `init_from` and `freeze`, see `LitModel`."""

    def __init__(self, n_features: int = 1, **common: Any) -> None:
        if n_features < 1:
            raise ValueError(f"n_features must be >= 1, got n_features={n_features}")
        super().__init__(**common, architecture={"n_features": n_features})
        # 1. Start with random values (weights and bias); the order reproduces the course's numbers.
        self.weights = nn.Parameter(torch.randn(n_features, dtype=torch.float), requires_grad=True)
        self.bias = nn.Parameter(torch.randn(1, dtype=torch.float), requires_grad=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.hparams.n_features == 1:
            return self.weights * x + self.bias  # the course's line
        return x @ self.weights.unsqueeze(-1) + self.bias  # the weighted sum of the features

    def on_train_epoch_end(self) -> None:
        super().on_train_epoch_end()  # the epoch's train/loss
        # The learned values, to watch them approach the ideal ones in TensorBoard.
        self.log_dict(self.reported_values(), sync_dist=True)

    def reported_values(self, standardization: Standardization | None = None) -> dict[str, float]:
        """`weight` (`weight/0`, ... with several features) and `bias`; on standardized data the
        same line on the file's values too, as `original_units/weight` and `original_units/bias`."""
        weights, bias = self.weights.tolist(), self.bias.item()
        values = _named(weights, bias)
        if standardization is not None:
            original = _named(*standardization.linear_in_original_units(weights, bias))
            values |= {f"original_units/{key}": value for key, value in original.items()}
        return values


def _named(weights: list[float], bias: float) -> dict[str, float]:
    if len(weights) == 1:
        return {"weight": weights[0], "bias": bias}
    return {**{f"weight/{i}": w for i, w in enumerate(weights)}, "bias": bias}
