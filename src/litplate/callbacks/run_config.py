"""The run's config inside its checkpoints, so eval and predict rebuild the model and data."""

from __future__ import annotations

from typing import Any

import lightning as L

from litplate.checkpoint import RUN_CONFIG_KEY


class StoreRunConfig(L.Callback):
    """Keeps the run's resolved config inside every checkpoint, so eval/predict rebuild the run."""

    def __init__(self, run_config: dict[str, Any]) -> None:
        self.run_config = run_config

    def on_save_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        checkpoint[RUN_CONFIG_KEY] = self.run_config
