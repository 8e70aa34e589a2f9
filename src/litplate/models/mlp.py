"""Growing the template beyond a straight line: a small multi-layer perceptron for y = f(x)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from hydra.utils import instantiate
from torch import nn

from litplate.models.base import LitModel
from litplate.run.config import to_plain


class MLPRegression(LitModel):
    """x → [Linear → activation (→ Dropout)] per hidden size → Linear → y.

    `activation` is a `_target_` dict (e.g. `{"_target_": "torch.nn.Tanh"}`), one instance per
    hidden layer. `common`: loss, optimizer, scheduler, `init_from` and `freeze`, see
    `LitModel`.
    """

    def __init__(
        self,
        hidden_sizes: Sequence[int] = (32, 32),
        activation: dict[str, Any] | None = None,
        dropout: float = 0.0,
        n_features: int = 1,
        **common: Any,
    ) -> None:
        hidden_sizes = list(to_plain(hidden_sizes))
        if not hidden_sizes or any(size < 1 for size in hidden_sizes):
            raise ValueError(f"hidden_sizes must be one or more sizes >= 1, got {hidden_sizes}")
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got dropout={dropout}")
        activation = to_plain(activation) or {"_target_": "torch.nn.Tanh"}
        architecture = {
            "hidden_sizes": hidden_sizes,
            "activation": activation,
            "dropout": dropout,
            "n_features": n_features,
        }
        super().__init__(**common, architecture=architecture)
        layers: list[nn.Module] = []
        in_features = n_features
        for size in hidden_sizes:
            layers += [nn.Linear(in_features, size), instantiate(self.hparams.activation)]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            in_features = size
        layers.append(nn.Linear(in_features, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
