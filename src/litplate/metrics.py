"""The mean of a loss over an epoch's samples, without waiting for the device at every step."""

from __future__ import annotations

import torch
from torchmetrics import Metric


class SampleMean(Metric):
    """Mean of per-batch values weighted by batch size; summed exactly across DDP ranks.

    torchmetrics' `MeanMetric` checks every update for NaN with a `.any()` that waits for the GPU
    at every step; its `nan_strategy="disable"` skips the check but then ignores the weights
    (torchmetrics 1.9.0, Lightning-AI/torchmetrics#3434, open). A NaN here stays in the mean.
    """

    full_state_update = False

    def __init__(self) -> None:
        super().__init__()
        self.add_state("total", torch.tensor(0.0), dist_reduce_fx="sum")
        self.add_state("count", torch.tensor(0.0), dist_reduce_fx="sum")

    def update(self, value: torch.Tensor, weight: int) -> None:
        self.total += value.detach() * weight
        self.count += weight

    def compute(self) -> torch.Tensor:
        return self.total / self.count
