"""Standardization: (x - mean) / std per feature, and the target's mean taken off, from the
training rows.

Features in their own units (ages in years, serum levels in the hundreds) give the weights of a
linear model gradients of very different sizes, and one learning rate cannot suit them all; on
standardized features it can. A target far from 0 (a mean of 150) leaves the bias to travel that
far, which an L1 loss does at a fixed speed per step; centred, it starts close. The target keeps
its units, so losses and metrics are the same numbers as on the file's values. The statistics are
plain floats, kept in the run's config, so every later use of the model (eval, predict, export)
applies exactly the same transform.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Standardization:
    """Per-feature mean and standard deviation, and the target's mean.

    `apply` maps inputs to what the model sees, `center` the targets it learns; `uncenter` gives
    its predictions in the target's own values.
    """

    mean: tuple[float, ...]
    std: tuple[float, ...]
    target_mean: float = 0.0

    def __post_init__(self) -> None:
        if len(self.mean) != len(self.std):
            raise ValueError(
                f"feature_mean has {len(self.mean)} values and feature_std {len(self.std)}"
            )
        numbers = (("feature_mean", self.mean), ("feature_std", self.std))
        for name, values in (*numbers, ("target_mean", (self.target_mean,))):
            if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in values):
                raise ValueError(f"{name} must be finite numbers, got {list(values)}")
        if not all(v > 0 for v in self.std):
            raise ValueError(f"feature_std must be > 0, got {list(self.std)}")

    @classmethod
    def of(
        cls, mean: Sequence[float], std: Sequence[float], target_mean: float = 0.0
    ) -> Standardization:
        return cls(tuple(float(v) for v in mean), tuple(float(v) for v in std), float(target_mean))

    @classmethod
    def fit(cls, X: torch.Tensor, y: torch.Tensor) -> Standardization:
        """The statistics of the rows of X and y (the training split).

        The population std (ddof 0, as scikit-learn's StandardScaler); a feature that is constant
        in these rows keeps std 1, so it is only centred rather than divided by zero. torch sums
        float32 in float64 on the CPU, so no float64 copy of the data is needed.
        """
        var, mean = torch.var_mean(X, dim=0, correction=0)
        std = var.double().sqrt()
        std = torch.where(std > 0, std, torch.ones_like(std))
        return cls.of(mean.tolist(), std.tolist(), y.mean().item())

    def apply(self, X: torch.Tensor) -> torch.Tensor:
        """(X - mean) / std, a new tensor of X's dtype."""
        mean = torch.tensor(self.mean, dtype=X.dtype)
        return (X - mean).div_(torch.tensor(self.std, dtype=X.dtype))

    def center(self, y: torch.Tensor) -> torch.Tensor:
        """The targets less the training mean, a new tensor of y's dtype."""
        return y - self.target_mean

    def uncenter(self, y: torch.Tensor) -> torch.Tensor:
        """Centred targets or predictions back in the target's own values."""
        return y + self.target_mean

    def linear_in_original_units(
        self, weights: Sequence[float], bias: float
    ) -> tuple[list[float], float]:
        """The weights and bias of the same line on unstandardized inputs.

        w·(x - m)/s + b + t = (w/s)·x + (b + t - Σ w·m/s), t the target's mean.
        """
        if len(weights) != len(self.mean):
            raise ValueError(f"{len(weights)} weights for {len(self.mean)} standardized features")
        original = [w / s for w, s in zip(weights, self.std, strict=True)]
        shift = math.fsum(w * m for w, m in zip(original, self.mean, strict=True))
        return original, bias + self.target_mean - shift
