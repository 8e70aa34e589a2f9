"""The per-epoch train and val loss of a fit, for the loss-curve plot."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch


class LossHistory(L.Callback):
    """Keeps `train/loss` and `val/loss` of every epoch as Lightning logs them (epoch means).

    The values stay tensors until asked for, so recording costs no device sync. They travel in
    checkpoints, so a resumed fit (ckpt_path) still has the whole curve.
    """

    KEYS = ("train/loss", "val/loss")

    def __init__(self) -> None:
        self.losses: dict[str, dict[int, torch.Tensor | float]] = {key: {} for key in self.KEYS}

    def _record(self, trainer: L.Trainer, key: str) -> None:
        if key in trainer.callback_metrics:
            self.losses[key][trainer.current_epoch] = trainer.callback_metrics[key].detach().clone()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._record(trainer, "train/loss")

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # After the validation epoch's end, when Lightning has computed its epoch values.
        if not trainer.sanity_checking:
            self._record(trainer, "val/loss")

    def curve(self, key: str) -> tuple[list[int], list[float]]:
        """(epochs, losses) of `train/loss` or `val/loss`, in epoch order."""
        epochs = sorted(self.losses[key])
        return epochs, [float(self.losses[key][epoch]) for epoch in epochs]

    def state_dict(self) -> dict[str, Any]:
        # (epochs, losses) as two tensors per key: checkpoints are written every epoch, and a dict
        # of hundreds of floats made each save pickle hundreds of objects.
        state = {}
        for key in self.KEYS:
            epochs, losses = self.curve(key)
            state[key] = (torch.tensor(epochs, dtype=torch.int64), torch.tensor(losses))
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.losses = {key: {} for key in self.KEYS}
        for key, (epochs, losses) in state_dict.items():
            self.losses[key] = dict(zip(epochs.tolist(), losses.tolist(), strict=True))
