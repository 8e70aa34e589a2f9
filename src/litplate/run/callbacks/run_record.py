"""What a checkpoint carries besides weights and loop state, to rebuild and resume a run exactly."""

from __future__ import annotations

import random
from typing import Any

import lightning as L
import numpy as np
import torch

from litplate.run.checkpoint import RUN_CONFIG_KEY

RNG_KEY = "rng_states"


class RunRecord(L.Callback):
    """The run's config and the random number generators' states, in every checkpoint.

    - The config lets eval, predict and export rebuild the model and data from the file alone.
    - Lightning restores weights, optimizer and loop state but not the global RNGs, which dropout
      and noise draw from: restoring them makes a resumed run bit-identical to one never stopped.
    """

    def __init__(self, run_config: dict[str, Any] | None = None) -> None:
        self.run_config = run_config

    def on_save_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        if self.run_config is not None:
            checkpoint[RUN_CONFIG_KEY] = self.run_config
        checkpoint[RNG_KEY] = rng_states()

    def on_load_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        if RNG_KEY in checkpoint:
            restore_rng_states(checkpoint[RNG_KEY])


def rng_states() -> dict[str, Any]:
    """The global RNG states as tensors and plain data, so checkpoints load with weights_only."""
    kind, keys, position, has_gauss, cached = np.random.get_state()
    version, python_keys, gauss = random.getstate()
    states = {
        "torch": torch.get_rng_state(),
        "python": [version, torch.tensor(python_keys, dtype=torch.int64), gauss],
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, cached],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    version, python_keys, gauss = states["python"]
    random.setstate((version, tuple(python_keys.tolist()), gauss))
    kind, keys, position, has_gauss, cached = states["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, cached))
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
