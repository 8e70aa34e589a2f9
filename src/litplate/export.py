"""Step 6 of the workflow, "save": the run's artefacts other than checkpoints."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from torch import nn

from litplate.atomic_write import atomic_path, atomic_write


def save_weights(model: nn.Module, path: str | Path) -> Path:
    """The model's state_dict as safetensors: plain tensors that anyone can load without pickle."""
    state = {key: value.detach().contiguous() for key, value in model.state_dict().items()}
    with atomic_path(path, keep_suffix=True) as tmp:
        save_file(state, str(tmp))
    return Path(path)


def save_figure(figure: Any, path: str | Path) -> Path:
    """A matplotlib figure as a PNG, written whole or not at all; the figure is then freed."""
    import matplotlib.pyplot as plt

    with atomic_path(path, keep_suffix=True) as tmp:
        figure.savefig(tmp, dpi=100)
    plt.close(figure)
    return Path(path)


def write_json(data: dict[str, Any], path: str | Path) -> Path:
    """Write atomically, so a crash never leaves a half-written file that looks like a result."""
    with atomic_write(path) as file:
        file.write(json.dumps(data, indent=2, sort_keys=True) + "\n")
    return Path(path)


def to_float(value: Any) -> Any:
    """Tensors and numbers as Python floats, for JSON."""
    if isinstance(value, torch.Tensor):
        return value.item() if value.numel() == 1 else value.tolist()
    return value
