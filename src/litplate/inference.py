"""Step 3 of the workflow, "make predictions", as the course makes them with a model in hand."""

from __future__ import annotations

import torch


def predict(model: torch.nn.Module, X: torch.Tensor) -> torch.Tensor:
    """The model's predictions for `X`: eval mode, no gradient tracking."""
    model.eval()
    with torch.inference_mode():
        return model(X)
