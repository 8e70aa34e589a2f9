"""Beyond a straight line: multi-layer perceptrons for y = f(x) and for class labels."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from hydra.utils import instantiate
from torch import nn

from litplate.models.base import ClassificationModel, LitModel
from litplate.run.config import to_plain


def mlp_architecture(
    hidden_sizes: Sequence[int], activation: dict[str, Any] | None, dropout: float, n_features: int
) -> dict[str, Any]:
    """The checked hyper-parameters of an MLP."""
    hidden_sizes = list(to_plain(hidden_sizes))
    if not hidden_sizes or min(hidden_sizes) < 1:
        raise ValueError(f"hidden_sizes must be one or more sizes >= 1, got {hidden_sizes}")
    if not 0 <= dropout < 1:
        raise ValueError(f"dropout must be in [0, 1), got dropout={dropout}")
    activation = to_plain(activation) or {"_target_": "torch.nn.Tanh"}
    return dict(
        hidden_sizes=hidden_sizes, activation=activation, dropout=dropout, n_features=n_features
    )


def mlp_layers(hparams: Any, n_outputs: int) -> nn.Sequential:
    """x → [Linear → activation (→ Dropout)] per hidden size → Linear → `n_outputs` values."""
    layers: list[nn.Module] = []
    in_features = hparams.n_features
    for size in hparams.hidden_sizes:
        layers += [nn.Linear(in_features, size), instantiate(hparams.activation)]
        layers += [nn.Dropout(hparams.dropout)] if hparams.dropout > 0 else []
        in_features = size
    return nn.Sequential(*layers, nn.Linear(in_features, n_outputs))


class MLPRegression(LitModel):
    """An MLP with one output; `activation` is a `_target_` dict, one instance per hidden layer."""

    def __init__(
        self,
        hidden_sizes: Sequence[int] = (32, 32),
        activation: dict[str, Any] | None = None,
        dropout: float = 0.0,
        n_features: int = 1,
        **common: Any,
    ) -> None:
        architecture = mlp_architecture(hidden_sizes, activation, dropout, n_features)
        super().__init__(**common, architecture=architecture)
        self.net = mlp_layers(self.hparams, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class MLPClassifier(ClassificationModel):
    """The same layers with one output (a logit) per class: `n_classes` of them."""

    def __init__(
        self,
        hidden_sizes: Sequence[int] = (64,),
        activation: dict[str, Any] | None = None,
        dropout: float = 0.0,
        n_features: int = 1,
        n_classes: int = 2,
        **common: Any,
    ) -> None:
        if n_classes < 2:
            raise ValueError(f"n_classes must be >= 2, got n_classes={n_classes}")
        architecture = mlp_architecture(hidden_sizes, activation, dropout, n_features)
        super().__init__(**common, architecture={**architecture, "n_classes": n_classes})
        self.net = mlp_layers(self.hparams, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
