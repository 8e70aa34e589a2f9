"""Step 1 of the workflow: the course's line y = weight * X + bias, or a sine (the MLP's data)."""

from __future__ import annotations

import math

import torch

from litplate.data.tensors import TensorDataModule

TARGETS = ("line", "sine")


class LinearDataModule(TensorDataModule):
    """X = arange(start, end, step); y = weight * X + bias, or weight * sin(2πX) + bias with
    `target="sine"`; + Gaussian noise from its own seed (the global RNG inits the model)."""

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
        y = weight * (X if target == "line" else torch.sin(2 * math.pi * X)) + bias
        if noise_std > 0:
            generator = torch.Generator().manual_seed(noise_seed)
            y.add_(torch.randn(y.shape, generator=generator).mul_(noise_std))
        self.set_data(X, y)
