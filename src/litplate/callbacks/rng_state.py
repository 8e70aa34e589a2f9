"""Save the random number generators' states in every checkpoint and restore them on resume.

Dropout, noise and random augmentation draw from the global RNGs. Lightning restores weights,
optimizer and loop state from a checkpoint but not the RNGs, so a resumed run drew other dropout
masks than a run that was never stopped. With this callback the two are bit-identical.
"""

from __future__ import annotations

import random
from typing import Any

import lightning as L
import numpy as np
import torch

KEY = "rng_states"


def collect_rng_states() -> dict[str, Any]:
    """The states as plain data and tensors, so checkpoints still load with weights_only=True."""
    kind, keys, position, has_gauss, cached = np.random.get_state()
    version, python_keys, gauss = random.getstate()
    # Long sequences as tensors: one object each to pickle instead of hundreds of ints.
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


class RNGStateCheckpoint(L.Callback):
    """Keeps the global RNG states in checkpoints (written at epoch ends) and restores them."""

    def on_save_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        checkpoint[KEY] = collect_rng_states()

    def on_load_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        if KEY in checkpoint:
            restore_rng_states(checkpoint[KEY])
