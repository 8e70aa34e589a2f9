"""Step 1 of the workflow: make the straight-line data of the course, y = weight * X + bias.

`target="sine"` bends the line into weight * sin(2πX) + bias, a curve a straight line cannot fit:
the data of the MLP example.
"""

from __future__ import annotations

import math

import torch

from litplate.data.tensors import TensorDataModule

TARGETS = ("line", "sine")


class LinearDataModule(TensorDataModule):
    """Known parameters, so we can check that training recovers them.

    X = arange(start, end, step) as a column, y = weight * X + bias (`target="line"`) or
    weight * sin(2πX) + bias (`target="sine"`), + optional Gaussian noise drawn from its own seed,
    so it never disturbs the global RNG the model is initialised from. Splits, batches and
    shuffling: see TensorDataModule.
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
        target: str = "line",
        **split_and_batch: object,
    ) -> None:
        super().__init__(**split_and_batch)
        numbers = {"start": start, "end": end, "step": step, "weight": weight, "bias": bias}
        for name, value in numbers.items():
            if not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, got {name}={value}")
        if step <= 0:
            raise ValueError(f"step must be > 0, got step={step}")
        if end <= start:
            raise ValueError(f"end must be greater than start, got start={start}, end={end}")
        if noise_std < 0:
            raise ValueError(f"noise_std must be >= 0, got noise_std={noise_std}")
        if target not in TARGETS:
            raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
        self.save_hyperparameters()

        X = torch.arange(start, end, step).unsqueeze(dim=1)
        # weight * X + bias or weight * sin(2πX) + bias, computed in place: one tensor the size of
        # X at a time on top of X and y, not one per operation (the same values, bit for bit).
        y = X.mul(weight) if target == "line" else X.mul(2 * math.pi).sin_().mul_(weight)
        y.add_(bias)
        if noise_std > 0:
            generator = torch.Generator().manual_seed(noise_seed)
            y.add_(torch.randn(y.shape, generator=generator).mul_(noise_std))
        self.set_data(X, y)
