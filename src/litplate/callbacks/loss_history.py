"""The per-epoch train and val loss of a fit, for the loss-curve plot."""

from __future__ import annotations

import bisect
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
        # What state_dict() last returned per key: (epochs, epochs tensor, losses tensor); a
        # checkpoint is dumped at many epochs, so only the epochs recorded since are converted.
        self._saved: dict[str, tuple[list[int], torch.Tensor, torch.Tensor]] = {}
        self._changed: dict[str, set[int]] = {key: set() for key in self.KEYS}

    def _record(self, trainer: L.Trainer, key: str) -> None:
        value = trainer.callback_metrics.get(key)  # Lightning rebuilds the dict at each access
        if value is not None:
            self.losses[key][trainer.current_epoch] = value.detach().clone()
            self._changed[key].add(trainer.current_epoch)

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
        # (epochs, losses) as two tensors per key: one object each to pickle.
        return {key: self._tensors(key)[1:] for key in self.KEYS}

    def _tensors(self, key: str) -> tuple[list[int], torch.Tensor, torch.Tensor]:
        epochs, epochs_tensor, losses = self._saved.get(
            key, ([], torch.zeros(0, dtype=torch.int64), torch.zeros(0))
        )
        changed, self._changed[key] = self._changed[key], set()
        if changed or key not in self._saved:
            # The saved epochs before the first changed one stay; the rest is converted again.
            keep = bisect.bisect_left(epochs, min(changed, default=len(self.losses[key])))
            tail = sorted(changed | set(epochs[keep:]))
            values = [float(self.losses[key][epoch]) for epoch in tail]
            epochs = epochs[:keep] + tail
            epochs_tensor = torch.cat([epochs_tensor[:keep], torch.tensor(tail, dtype=torch.int64)])
            losses = torch.cat([losses[:keep], torch.tensor(values)])
            self._saved[key] = (epochs, epochs_tensor, losses)
        return epochs, epochs_tensor, losses

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.losses = {key: {} for key in self.KEYS}
        self._saved, self._changed = {}, {key: set() for key in self.KEYS}
        for key, (epochs, losses) in state_dict.items():
            self.losses[key] = dict(zip(epochs.tolist(), losses.tolist(), strict=True))
            self._saved[key] = (epochs.tolist(), epochs, losses)
