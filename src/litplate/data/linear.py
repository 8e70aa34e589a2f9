"""Step 1 of the workflow: the course's line y = weight * X + bias, or a sine (the MLP's data)."""

from __future__ import annotations

import math

import torch

from litplate.data.tensors import Rules, TensorDataModule, check_arguments

RULES: Rules = {
    **dict.fromkeys(("start", "end", "weight", "bias"), (math.isfinite, "a finite number")),
    "step": (lambda v: 0 < v < math.inf, "a finite number > 0"),
    "noise_std": (lambda v: 0 <= v < math.inf, "a finite number >= 0"),
    "target": (lambda v: v in ("line", "sine"), "line or sine"),
}


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
        check_arguments(RULES, locals())
        if end <= start:
            raise ValueError(f"end={end!r}: expected a number greater than start={start!r}")
        self.save_hyperparameters()

        X = torch.arange(start, end, step).unsqueeze(dim=1)
        y = weight * (X if target == "line" else torch.sin(2 * math.pi * X)) + bias
        if noise_std > 0:
            generator = torch.Generator().manual_seed(noise_seed)
            y.add_(torch.randn(y.shape, generator=generator).mul_(noise_std))
        self.set_data(X, y)
