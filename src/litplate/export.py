"""Step 6 of the workflow, "save": the run's artefacts other than checkpoints."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors.torch import save_file
from torch import nn

if TYPE_CHECKING:
    from litplate.data.standardize import Standardization


def save_weights(model: nn.Module, path: str | Path) -> Path:
    """The model's state_dict as safetensors: plain tensors that anyone can load without pickle."""
    path = Path(path)
    state = {key: value.detach().contiguous() for key, value in model.state_dict().items()}
    save_file(state, str(path))
    return path


def write_json(data: dict[str, Any], path: str | Path) -> Path:
    """Write atomically, so a crash never leaves a half-written file that looks like a result."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)
    return path


def weight_and_bias(
    model: nn.Module, standardization: Standardization | None = None
) -> dict[str, float]:
    """`weight` and `bias` for metrics.json when the model is the course's line (`weights` and a
    one-element `bias`); `weight/0`, `weight/1`, ... with several features. Other models (e.g. the
    MLP) have none to report: {}.

    On standardized data (`standardization`, a CSV's) these are the model's own parameters, per
    standard deviation of each feature and around the target's mean; the same line on the file's
    values is added as `original_units/weight` (or `/weight/0`, ...) and `original_units/bias`.
    """
    parameters = dict(model.named_parameters())
    weights, bias = parameters.get("weights"), parameters.get("bias")
    if weights is None or bias is None or bias.numel() != 1 or weights.dim() != 1:
        return {}
    values = _named(weights.tolist(), bias.item())
    if standardization is not None:
        original = _named(*standardization.linear_in_original_units(weights.tolist(), bias.item()))
        values.update({f"original_units/{key}": value for key, value in original.items()})
    return values


def _named(weights: list[float], bias: float) -> dict[str, float]:
    if len(weights) == 1:
        return {"weight": weights[0], "bias": bias}
    return {**{f"weight/{i}": w for i, w in enumerate(weights)}, "bias": bias}


def to_float(value: Any) -> Any:
    """Tensors and numbers as Python floats, for JSON."""
    if isinstance(value, torch.Tensor):
        return value.item() if value.numel() == 1 else value.tolist()
    return value
