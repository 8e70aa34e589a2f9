"""What litplate's checkpoint callbacks share: ModelCheckpoint without its per-step costs."""

from __future__ import annotations

import functools
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint


class EpochEndCheckpoint(ModelCheckpoint):
    """A `ModelCheckpoint` whose hooks cost nothing at a training step unless it saves there.

    Lightning names every hook call after the callback's `state_key`, which ModelCheckpoint
    rebuilds from its arguments each time, and it checks at every step whether to save; with
    `every_n_train_steps` and `train_time_interval` unset (litplate's configs) it never does.
    """

    @functools.cached_property
    def state_key(self) -> str:  # made of arguments fixed once the callback is built
        return self._make_state_key()

    def _make_state_key(self) -> str:
        return super().state_key

    def on_train_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        if self._every_n_train_steps >= 1 or self._train_time_interval is not None:
            super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
