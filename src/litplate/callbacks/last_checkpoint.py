"""checkpoints/last.ckpt: what a resume starts from, rewritten at epoch ends but not too often."""

from __future__ import annotations

import math
import os
import time
from typing import Any

import lightning as L

from litplate.callbacks.best_checkpoint import BestCheckpoint
from litplate.callbacks.epoch_checkpoint import EpochEndCheckpoint


class LastCheckpoint(EpochEndCheckpoint):
    """A `ModelCheckpoint` without a monitor that skips epoch ends less than `min_interval_s` after
    its file was last written, except the final epoch's.

    Writing a checkpoint costs about a millisecond: more than a whole epoch of the course's
    40 points. Any epoch-end checkpoint resumes exactly, so an older last.ckpt only means redoing
    up to `min_interval_s` of training after a crash. Lightning's own `train_time_interval` would
    save mid-epoch, which cannot be resumed exactly. `min_interval_s=0` saves every epoch.
    """

    def __init__(self, *args: Any, min_interval_s: float = 0.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.monitor is not None:
            raise ValueError(f"LastCheckpoint keeps the latest epoch; got monitor={self.monitor!r}")
        if min_interval_s < 0:
            raise ValueError(f"min_interval_s must be >= 0, got min_interval_s={min_interval_s}")
        self.min_interval_s = min_interval_s

    def _due(self, trainer: L.Trainer) -> bool:
        if self.min_interval_s == 0 or final_epoch(trainer):
            return True
        try:  # the file's age, so the interval also holds across a resume
            age = time.time() - os.path.getmtime(self.best_model_path)
        except OSError:  # nothing written yet, or not a local file
            age = math.inf
        # Rank 0 decides for all: saving has a barrier that every rank must reach.
        return trainer.strategy.broadcast(age >= self.min_interval_s)

    def _save_checkpoint(self, trainer: L.Trainer, filepath: str) -> None:
        # A best checkpoint kept in memory goes to disk first: the best that last.ckpt names
        # (in the BestCheckpoint state it holds) is then always on disk too.
        for callback in trainer.checkpoint_callbacks:
            if isinstance(callback, BestCheckpoint):
                callback.flush(trainer)
        super()._save_checkpoint(trainer, filepath)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._due(trainer):
            super().on_train_epoch_end(trainer, pl_module)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking and self._due(trainer):
            super().on_validation_end(trainer, pl_module)


def final_epoch(trainer: L.Trainer) -> bool:
    """Whether the fit stops after this epoch (max_epochs, max_steps or a callback's stop)."""
    max_epochs = trainer.max_epochs if trainer.max_epochs not in (None, -1) else math.inf
    max_steps = trainer.max_steps if trainer.max_steps not in (None, -1) else math.inf
    return (
        trainer.should_stop
        or trainer.current_epoch + 1 >= max_epochs
        or trainer.global_step >= max_steps
    )
