"""Step 6 of the workflow, "save": the run's artefacts other than checkpoints."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from torch import nn


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


def to_float(value: Any) -> Any:
    """Tensors and numbers as Python floats, for JSON."""
    if isinstance(value, torch.Tensor):
        return value.item() if value.numel() == 1 else value.tolist()
    return value
