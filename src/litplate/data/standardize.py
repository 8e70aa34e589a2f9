"""Standardization from the training rows: (x - mean) / std per feature, the target's mean off
(why, and how the run stores it: docs/data.md, "Standardization")."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Standardization:
    """Per-feature mean and standard deviation, and the target's mean, as plain floats."""

    mean: tuple[float, ...]
    std: tuple[float, ...]
    target_mean: float = 0.0

    def __post_init__(self) -> None:
        if len(self.mean) != len(self.std):
            raise ValueError(
                f"feature_mean has {len(self.mean)} values and feature_std {len(self.std)}"
            )
        numbers = {"feature_mean": self.mean, "feature_std": self.std}
        for name, values in {**numbers, "target_mean": (self.target_mean,)}.items():
            if not all(map(math.isfinite, values)):
                raise ValueError(f"{name} must be finite numbers, got {list(values)}")
        if not all(v > 0 for v in self.std):
            raise ValueError(f"feature_std must be > 0, got {list(self.std)}")

    @classmethod
    def of(
        cls, mean: Sequence[float], std: Sequence[float], target_mean: float = 0.0
    ) -> Standardization:
        return cls(tuple(map(float, mean)), tuple(map(float, std)), float(target_mean))

    @classmethod
    def fit(cls, X: torch.Tensor, y: torch.Tensor) -> Standardization:
        """The rows' population std (ddof 0); a constant feature keeps std 1, so it is centred."""
        var, mean = torch.var_mean(X, dim=0, correction=0)  # float32 summed in float64 on a CPU
        std = torch.where(var > 0, var.double().sqrt(), 1.0)
        return cls.of(mean.tolist(), std.tolist(), y.mean().item())

    def apply(self, X: torch.Tensor) -> torch.Tensor:
        """(X - mean) / std: the inputs the model sees."""
        mean = torch.tensor(self.mean, dtype=X.dtype)
        return (X - mean).div_(torch.tensor(self.std, dtype=X.dtype))

    def uncenter(self, y: torch.Tensor) -> torch.Tensor:
        """Centred targets or predictions back in the target's own values."""
        return y + self.target_mean

    def linear_in_original_units(
        self, weights: Sequence[float], bias: float
    ) -> tuple[list[float], float]:
        """The line on unstandardized inputs: w·(x - m)/s + b + t = (w/s)·x + b + t - Σ w·m/s."""
        original = [w / s for w, s in zip(weights, self.std, strict=True)]
        shift = math.fsum(w * m for w, m in zip(original, self.mean, strict=True))
        return original, bias + self.target_mean - shift
